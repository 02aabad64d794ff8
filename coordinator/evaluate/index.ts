/**
 * Stage 7, evaluate: metrics for every model, ensemble and baseline on a window after training,
 * and the report (self-contained HTML with SVG charts, plus the same figures as JSON).
 */
export { computeMetrics } from './metrics.js';
export type { Metrics, MetricsOptions, CalibrationBin, RocPoint, GainsPoint } from './metrics.js';
export { aucInterval, aucDifference, Z_95 } from './delong.js';
export type { AucInterval, AucDifference } from './delong.js';
export { withAggregates, selectRows } from './aggregates.js';
export type { ProductAggregates, AggregateReader } from './aggregates.js';
export { recencyFrequencyScores, logisticRegressionBaseline, modelInput, trainingSample, RECENCY_FREQUENCY, LOGISTIC_COUNTS } from './baselines.js';
export type { RecencyFrequencyOptions, LogisticBaselineOptions } from './baselines.js';
export { fitLogisticRegression, predictLogistic } from './logistic.js';
export type { LogisticModel, LogisticOptions } from './logistic.js';
export { MIN_TRAINING_POSITIVES, MIN_HELD_OUT_POSITIVES, positivesFlags, positivesWarning, minimumPositives } from './positives.js';
export type { ProductFlag, PositivesSet, PositivesBySet } from './positives.js';
export { verdictOf, compare } from './verdict.js';
export type { Verdict, VerdictOutcome, Comparison } from './verdict.js';
export { buildReport, evaluatedOnOf, PUBLISHED } from './report.js';
export type {
  EvaluationReport,
  ReportInput,
  ReportHeader,
  ProductEvaluationInput,
  ProductReport,
  ReportEntry,
  EntryKind,
  EnsembleSummary,
  TrainingCurve,
  EarlierNight,
  AudienceSize,
} from './report.js';
export { decileTable, scoreHistogram, reliabilityBins } from './score-tables.js';
export type { DecileRow, HistogramBin, ReliabilityBin } from './score-tables.js';
export { statRows, stageMs, formatDuration, type RunStatistics, type StatRow } from './run-stats.js';
export { axisMax } from './charts.js';
export { writeReport } from './write-report.js';
export { renderHtml, formatMetric, METRIC_COLUMNS } from './render-html.js';
