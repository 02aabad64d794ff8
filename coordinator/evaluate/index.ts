/**
 * Stage 7, evaluate: metrics for every model, ensemble and baseline on a window after training,
 * and the report (self-contained HTML with SVG charts, plus the same figures as JSON).
 */
export { computeMetrics } from './metrics.js';
export type { Metrics, MetricsOptions, CalibrationBin, RocPoint, GainsPoint } from './metrics.js';
export { readCounts } from './counts.js';
export type { CustomerCounts } from './counts.js';
export { recencyFrequencyScores, logisticRegressionBaseline } from './baselines.js';
export type { RecencyFrequencyOptions, LogisticBaselineOptions } from './baselines.js';
export { fitLogisticRegression, predictLogistic } from './logistic.js';
export type { LogisticModel, LogisticOptions } from './logistic.js';
export { buildReport } from './report.js';
export type {
  EvaluationReport,
  ReportInput,
  ReportHeader,
  ProductEvaluationInput,
  ProductReport,
  ReportEntry,
  EntryKind,
  EnsembleSummary,
} from './report.js';
export { writeReport } from './write-report.js';
export { renderHtml, formatMetric, METRIC_COLUMNS } from './render-html.js';
