/**
 * Helpers for the preprocess tests: Job objects built directly (no YAML), temp run folders, hand-made input
 * files written through DuckDB, and shard files read back as plain rows.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { RecordBatch } from 'apache-arrow';
import { DAY_MS, type Job } from '../../jobs/job.js';
import { readShard, type PreprocessResult, type ShardSet } from '../../coordinator/preprocess/index.js';
import { jobAggregateLayout } from '../../coordinator/features/index.js';
import { withAggregates } from '../../coordinator/evaluate/index.js';
import { readScoreSetRows } from '../../coordinator/pipeline/collect.js';

export const TAOBAO_EVENTS = path.resolve('examples/taobao/events.csv.gz');
/**
 * 2017-11-25 00:00 in the data's own time zone (Beijing, UTC+8) = 2017-11-24 16:00 UTC: the start of the
 * collection period. The 35 stray rows are exactly those before it. (As a UTC day, 2017-11-25 would also
 * reject the 1,355 genuine rows of 2017-11-24 16:00–24:00 UTC.)
 */
export const TAOBAO_VALID_FROM_MS = Date.UTC(2017, 10, 24, 16);

type DeepPartial<T> = { [K in keyof T]?: T[K] extends (infer U)[] ? U[] : T[K] extends object | null ? DeepPartial<T[K]> : T[K] };

/** The sample job of the brief: Taobao columns, pv/cart/fav/buy, validFrom 2017-11-25, H 2, lookback 7, max length 50. */
export function taobaoJob(overrides: DeepPartial<Job> = {}): Job {
  const base: Job = {
    account: 'taobao',
    file: path.resolve('examples/taobao/job.yaml'),
    input: { path: TAOBAO_EVENTS, format: 'csv', timeFormat: 'auto' },
    columns: { customer: 'user_id', time: 'timestamp', eventType: 'behavior_type', item: 'item_id', category: 'category_id', numeric: [] },
    events: { types: ['pv', 'cart', 'fav', 'buy'], purchase: 'buy' },
    validation: { validFromMs: TAOBAO_VALID_FROM_MS, validToMs: null, maxRejectedShare: 0.01 },
    label: { horizonDays: 2 },
    sequence: { lookbackDays: 7, maxLength: 50 },
    features: { windowsDays: [1, 7] },
    training: { snapshots: 1 },
    vocabulary: { minCount: 2, maxSize: 20_000 },
    products: { overall: true, topCategories: 0, categories: [] },
    sampling: { negativeRate: 1 },
    shards: { count: 4, batchRows: 256 },
    cluster: { workers: 2, addresses: [], inFlightPerWorker: 2, heartbeatTimeoutMs: 30_000, maxAttemptsPerShard: 3 },
    model: {
      architectures: ['lstm'], embeddingDim: 16, hiddenUnits: 32, denseUnits: 16, learningRate: 0.005, batchSize: 64,
      epochs: 1, patience: 2, replicas: 4, validationShare: 0.2, classWeight: 'balanced', seed: 7,
    },
    tuning: { trials: 0 },
    ensemble: { method: 'mean' },
    actions: [{ name: 'in_store', minScore: 0.4 }],
    output: { dir: path.resolve('out') },
    resources: { memoryLimit: '1GB', threads: 2 },
  };
  return merge(base, overrides) as Job;
}

/** A small job over hand-made files with columns cid, ts, kind (view|cart|buy), item, cat. */
export function smallJob(inputPath: string, overrides: DeepPartial<Job> = {}): Job {
  return taobaoJob(
    merge(
      {
        account: 'shop',
        file: '/jobs/shop.yaml',
        input: { path: inputPath, format: inputPath.includes('parquet') ? 'parquet' : 'csv', timeFormat: 'auto' },
        columns: { customer: 'cid', time: 'ts', eventType: 'kind', item: 'item', category: 'cat', numeric: [] },
        events: { types: ['view', 'cart', 'buy'], purchase: 'buy' },
        validation: { validFromMs: null, validToMs: null, maxRejectedShare: 0.5 },
        sequence: { lookbackDays: 3, maxLength: 5 },
        vocabulary: { minCount: 1, maxSize: 1000 },
        shards: { count: 3, batchRows: 4 },
      },
      overrides,
    ) as DeepPartial<Job>,
  );
}

function merge(a: unknown, b: unknown): unknown {
  if (b === undefined) return a;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object' || Array.isArray(a) || Array.isArray(b)) return b;
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = merge(out[k], v);
  return out;
}

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-preprocess-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs SQL statements in a throwaway DuckDB (to write input files, or to read Parquet outputs). */
export async function duck<T = Record<string, unknown>>(...statements: string[]): Promise<T[]> {
  const instance = await DuckDBInstance.create(':memory:');
  const c = await instance.connect();
  try {
    await c.run(`SET TimeZone = 'UTC'`);
    let rows: T[] = [];
    for (const s of statements) rows = (await c.runAndReadAll(s)).getRowObjectsJS() as T[];
    return rows;
  } finally {
    c.closeSync();
    instance.closeSync();
  }
}

export interface EventRow {
  cid: string;
  /** 'YYYY-MM-DD HH:MM:SS' UTC, or epoch seconds/millis, or anything (bad times). */
  ts: string | number;
  kind: string;
  item?: string;
  cat?: string;
  [column: string]: string | number | undefined;
}

/** Writes rows as CSV (all columns as text) or Parquet, via DuckDB. */
export async function writeEvents(file: string, rows: EventRow[], columns = ['cid', 'ts', 'kind', 'item', 'cat']): Promise<void> {
  const lit = (v: string | number | undefined) => (v === undefined ? 'NULL' : `'${String(v).replaceAll("'", "''")}'`);
  const values = rows.map((r) => `(${columns.map((c) => lit(r[c])).join(', ')})`).join(',\n');
  const format = file.endsWith('.parquet') ? 'parquet' : 'csv';
  const select = rows.length > 0
    ? `SELECT * FROM (VALUES ${values}) t(${columns.map((c) => `"${c}"`).join(', ')})`
    : `SELECT ${columns.map((c) => `NULL::VARCHAR AS "${c}"`).join(', ')} LIMIT 0`;
  await duck(`COPY (${select}) TO '${file}' (FORMAT ${format}${format === 'csv' ? ', HEADER true' : ''})`);
}

/** Epoch seconds of a UTC day plus hours. */
export function at(day: string, hours = 0): number {
  return (Date.parse(`${day}T00:00:00Z`) + hours * 3_600_000) / 1000;
}

export { DAY_MS };

export interface ShardRow {
  shard: number;
  customer_id: string;
  history_length: number;
  item?: number[];
  category?: number[];
  event: number[];
  dt: number[];
  age: number[];
  labels?: number[];
  wide: number[];
  weight: number;
  split: number;
  snapshot: number;
  [num: `num_${string}`]: number[];
}

/** Every row of a shard set, in shard then file order, with the batch sizes seen. */
export async function readSet(set: ShardSet): Promise<{ rows: ShardRow[]; batchSizes: number[]; batches: RecordBatch[] }> {
  const rows: ShardRow[] = [];
  const batchSizes: number[] = [];
  const batches: RecordBatch[] = [];
  for (const [shard, f] of set.shards.entries()) {
    for await (const batch of readShard(f.file)) {
      batches.push(batch);
      batchSizes.push(batch.numRows);
      for (const r of batch.toArray()) {
        const o: Record<string, unknown> = { shard };
        for (const field of batch.schema.fields) {
          const v = (r as Record<string, unknown>)[field.name];
          o[field.name] = v && typeof v === 'object' && 'toArray' in v ? Array.from((v as { toArray(): ArrayLike<number> }).toArray()) : v;
        }
        rows.push(o as unknown as ShardRow);
      }
    }
  }
  return { rows, batchSizes, batches };
}

export function byCustomer(rows: ShardRow[]): Map<string, ShardRow> {
  return new Map(rows.map((r) => [r.customer_id, r]));
}

export function positivesOf(result: PreprocessResult, set: 'train' | 'score', product = 'any'): number {
  return result[set]!.positives[product]!;
}

export interface FeatureRow {
  customer_id: string;
  product: string;
  [name: string]: string | number | null;
}

/**
 * A set's aggregate features as rows (customer, product, raw value per feature; null for "never"), read back
 * from the shards' `wide` values of the latest snapshot the way the evaluation reads them, in shard order.
 */
export async function readFeatureRows(set: ShardSet, job: Job): Promise<FeatureRow[]> {
  const layout = jobAggregateLayout(job);
  const files = set.shards.map((s) => s.file);
  const { customerIds, products } = await readScoreSetRows(files);
  const perProduct = await withAggregates(files, layout, customerIds, (reader) => Promise.all(products.map((p) => reader.product(p))));
  return customerIds.flatMap((customer_id, i) =>
    perProduct.map((a) => {
      const row: FeatureRow = { customer_id, product: a.product };
      layout.features.forEach((f, j) => (row[f.name] = Number.isNaN(a.columns[j]![i]!) ? null : a.columns[j]![i]!));
      return row;
    }),
  );
}
