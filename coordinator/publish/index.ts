/**
 * Stage 8, publish: the night's product, a Parquet prediction table partitioned by
 * account/date/product, committed exactly once through per-partition manifests; readers that honour
 * the manifests; the table loaded into DuckDB, exported as CSV, and cut into audiences per action.
 */
export { publishPredictions, CRASH_POINTS } from './publish.js';
export type { PublishOptions, PublishResult, PublishedPartition, ProductPredictions, CrashPoint } from './publish.js';
export { readPartition, committedPartitions, committedPartition } from './read.js';
export type { CommittedPartition, PartitionContents, ReadOptions } from './read.js';
export { loadPredictionsIntoDuckDB, exportCsv } from './load.js';
export type { LoadedTable, ExportCsvOptions } from './load.js';
export { exportAudiences, productsWithEmptyAudiences, AUDIENCE_MANIFEST } from './audiences.js';
export type { ExportAudiencesOptions, AudienceExport, AudienceFile, AudienceFormat } from './audiences.js';
export { MANIFEST_NAME } from './manifest.js';
export type { PartitionManifest, ManifestFile, PublishedChampion } from './manifest.js';
export { checkActions, resolveActions } from './actions.js';
export type { ActionRule, PartitionAction } from './actions.js';
export { PREDICTION_SCHEMA, NO_ACTION } from './schema.js';
export type { PredictionRow } from './schema.js';
export { partitionDir, dateDir, audienceDir, stagingDir, safeComponent, safeDate } from './layout.js';
export type { DuckDBSettings } from './duckdb.js';
export { writeDateCommit, removeDateCommit, markExportsRemoved, dateCommitStatus, dateCommitPath, DATE_COMMIT_NAME } from './date-commit.js';
export type { DateCommitRecord, DateCommitStatus } from './date-commit.js';
