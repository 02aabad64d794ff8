/**
 * Seeded synthetic purchase events for benchmarks, generated inside DuckDB (no JavaScript object per event).
 *
 * Shape (Taobao-like columns plus a price):
 *   user_id BIGINT, item_id BIGINT, category_id BIGINT, behavior_type VARCHAR (pv|cart|fav|buy),
 *   timestamp BIGINT (epoch seconds UTC), price DOUBLE
 *
 * Skew: event i belongs to customer ⌊C·u^skew⌋ + 1 with u uniform, so the density of customer c falls like
 * c^(1/skew − 1): a few customers with very many events (at 10 M events and the defaults the heaviest has
 * ~40,000), most customers with a handful. Items and categories are skewed the same way; each customer has
 * its own purchase propensity, most of them low, so positives are rare (about 1 % for a 2-day horizon).
 *
 * Determinism: every value is a function of (row number, seed) through DuckDB's hash() (see U), so one seed gives
 * the same file on the same DuckDB version (hash() is not promised stable across versions; fine for a benchmark).
 *
 * CLI: npx tsx bench/synthetic-events.ts --events 10000000 --out /tmp/events [--format parquet|csv|both]
 *      [--hive] [--seed 7] [--days 30] [--start 2026-10-01] [--events-per-customer 10] [--skew 2.5]
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';

export interface SyntheticEventsOptions {
  /** Number of events (rows). */
  events: number;
  /** Output folder (created; files inside it are replaced). */
  out: string;
  /** @default 'parquet' */
  format?: 'parquet' | 'csv' | 'both';
  /** Write Hive folders `date=YYYY-MM-DD/` (one per UTC day) instead of flat files. @default false */
  hive?: boolean;
  /** @default 7 */
  seed?: number;
  /** First UTC day of the data. @default '2026-10-01' */
  start?: string;
  /** Days of data. @default 30 */
  days?: number;
  /** Mean events per customer (sets the customer count). @default 10 */
  eventsPerCustomer?: number;
  /** Larger is more skewed; 1 is uniform. @default 2.5 */
  skew?: number;
  /** DuckDB memory_limit while generating. @default '2GB' */
  memoryLimit?: string;
}

export interface SyntheticEvents {
  /** What to put in a job's input.path: a glob over the written files. */
  inputPath: string;
  files: string[];
  customers: number;
  events: number;
  start: string;
  days: number;
}

/**
 * A uniform number in [0, 1) for (integer key, stream, seed). DuckDB's hash() of a single integer is a good
 * 64-bit mixer, but hash(a, b, c) combines per-argument hashes in a way that correlates two calls sharing
 * `a`, so every draw hashes one integer that spreads the key over 16 streams per seed.
 */
const STREAMS = { customer: 0, ts: 1, item: 2, kind: 3, category: 4, price: 5, propensity: 6 } as const;
const U = (key: string, stream: keyof typeof STREAMS, seed: number) =>
  `(hash((${seed}::BIGINT * 1000000007 + ${key}) * 16 + ${STREAMS[stream]}) / 18446744073709551616.0)`;

export async function generateEvents(o: SyntheticEventsOptions): Promise<SyntheticEvents> {
  const seed = o.seed ?? 7;
  const days = o.days ?? 30;
  const start = o.start ?? '2026-10-01';
  const skew = o.skew ?? 2.5;
  const customers = Math.max(1, Math.round(o.events / (o.eventsPerCustomer ?? 10)));
  const items = Math.max(1_000, Math.round(o.events / 20));
  const categories = Math.max(50, Math.min(5_000, Math.round(items / 50)));
  const startSec = Date.parse(`${start}T00:00:00Z`) / 1000;
  const formats = o.format === 'both' ? ['parquet', 'csv'] : [o.format ?? 'parquet'];

  await rm(o.out, { recursive: true, force: true });
  await mkdir(o.out, { recursive: true });
  const instance = await DuckDBInstance.create(':memory:', {
    memory_limit: o.memoryLimit ?? '2GB',
    temp_directory: path.join(o.out, '.tmp'),
    preserve_insertion_order: 'false',
  });
  const db = await instance.connect();
  try {
    // Per-customer purchase propensity: most customers rarely buy, a few often.
    const rows = `
      SELECT
        c AS user_id,
        item AS item_id,
        (floor(${categories} * pow(${U('item', 'category', seed)}, 2)) + 1)::BIGINT AS category_id,
        CASE
          WHEN v < p_buy THEN 'buy'
          WHEN v < p_buy + 0.05 THEN 'cart'
          WHEN v < p_buy + 0.08 THEN 'fav'
          ELSE 'pv' END AS behavior_type,
        (${startSec} + floor(${U('i', 'ts', seed)} * ${days * 86_400}))::BIGINT AS "timestamp",
        round(pow(10, 0.3 + 2.7 * ${U('item', 'price', seed)}), 2) AS price
      FROM (
        SELECT i, c,
          (floor(${items} * pow(${U('i', 'item', seed)}, 3)) + 1)::BIGINT AS item,
          ${U('i', 'kind', seed)} AS v,
          0.001 + 0.06 * pow(${U('c', 'propensity', seed)}, 6) AS p_buy
        FROM (SELECT i, (floor(${customers} * pow(${U('i', 'customer', seed)}, ${skew})) + 1)::BIGINT AS c FROM range(${o.events}) t(i))
      )`;
    const files: string[] = [];
    for (const format of formats) {
      const target = path.join(o.out, format);
      const copyOptions = format === 'parquet' ? `FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880` : `FORMAT csv, HEADER true`;
      if (o.hive) {
        await db.run(`COPY (SELECT *, strftime(to_timestamp("timestamp"), '%Y-%m-%d') AS date FROM (${rows})) TO '${target}' (${copyOptions}, PARTITION_BY (date), OVERWRITE_OR_IGNORE true)`);
      } else {
        await mkdir(target, { recursive: true });
        // Several files of at most ~5 M rows, as a warehouse export would write them.
        await db.run(`COPY (${rows}) TO '${target}' (${copyOptions}, PER_THREAD_OUTPUT true, FILE_SIZE_BYTES '256MB', OVERWRITE_OR_IGNORE true)`);
      }
      files.push(...(await listFiles(target)));
    }
    const first = formats[0]!;
    const inputPath = o.hive ? path.join(o.out, first, '**', `*.${first}`) : path.join(o.out, first, `*.${first}`);
    return { inputPath, files, customers, events: o.events, start, days };
  } finally {
    db.closeSync();
    instance.closeSync();
    await rm(path.join(o.out, '.tmp'), { recursive: true, force: true });
  }
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(path.join(e.parentPath, e.name));
  }
  return out.sort();
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const events = Number(flag(args, 'events') ?? '1000000');
  const out = flag(args, 'out');
  if (!out || !Number.isInteger(events) || events < 1) {
    console.error('usage: tsx bench/synthetic-events.ts --events N --out DIR [--format parquet|csv|both] [--hive] [--seed 7] [--days 30] [--start YYYY-MM-DD]');
    process.exit(2);
  }
  const t0 = performance.now();
  const r = await generateEvents({
    events,
    out,
    format: (flag(args, 'format') as SyntheticEventsOptions['format']) ?? 'parquet',
    hive: args.includes('--hive'),
    seed: Number(flag(args, 'seed') ?? 7),
    days: Number(flag(args, 'days') ?? 30),
    start: flag(args, 'start') ?? '2026-10-01',
    eventsPerCustomer: Number(flag(args, 'events-per-customer') ?? 10),
    skew: Number(flag(args, 'skew') ?? 2.5),
  });
  console.log(`${r.events} events, up to ${r.customers} customers, ${r.files.length} files → ${r.inputPath} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('synthetic-events.ts')) {
  await main();
}
