/** The prediction table's columns, in file order, with their DuckDB (and so Parquet) types. */
export const PREDICTION_SCHEMA = [
  { name: 'customer_id', type: 'VARCHAR' },
  { name: 'product', type: 'VARCHAR' },
  { name: 'score', type: 'FLOAT' },
  { name: 'rank', type: 'INTEGER' },
  { name: 'decile', type: 'INTEGER' },
  { name: 'action', type: 'VARCHAR' },
  { name: 'model_version', type: 'VARCHAR' },
  { name: 'run_id', type: 'VARCHAR' },
  { name: 'scored_at', type: 'TIMESTAMP WITH TIME ZONE' },
] as const;

export interface PredictionRow {
  customer_id: string;
  product: string;
  score: number;
  /** 1 = highest score; ties broken by customer_id (byte order). */
  rank: number;
  /** 1..10, 1 = the top 10 % by rank: floor((rank − 1) · 10 / rows) + 1. */
  decile: number;
  action: string;
  model_version: string;
  run_id: string;
  /** ISO 8601, UTC. */
  scored_at: string;
}

/** Below every threshold. */
export const NO_ACTION = 'none';

export type ParquetCompression = 'zstd' | 'snappy';

/** Parquet settings fixed (row group size included) so that the same rows always give the same bytes. */
export function parquetOptions(compression: ParquetCompression = 'zstd'): string {
  if (compression !== 'zstd' && compression !== 'snappy') throw new RangeError(`unknown Parquet compression "${String(compression)}"`);
  return `FORMAT parquet, COMPRESSION ${compression}, ROW_GROUP_SIZE 122880`;
}

/** scored_at as written in CSV and returned by readers. */
export const ISO_TIMESTAMP_SQL = "strftime(scored_at, '%Y-%m-%dT%H:%M:%S.%gZ')";
