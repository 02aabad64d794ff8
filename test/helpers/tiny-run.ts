/**
 * A tiny whole run for the output-safety tests: a hand-written CSV (RFC 4180 quoting, so any value fits in
 * a cell), a job file beside it, and a walk of every file and folder a run leaves.
 */
import { lstat, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';

export const TINY_DATE = '2024-05-10';
const DAY_S = 86_400;
const START_S = Date.parse('2024-05-04T00:00:00Z') / 1000;

export interface TinyEvents {
  /** Customer ids. @default c00 … c11 */
  customers?: string[];
  /** Category values, each bought by every customer in the training window. @default ['k0', 'k1'] */
  categories?: string[];
  /** Rows of an unknown event type (rejected into the quarantine). @default 0 */
  unknownEvents?: number;
}

/** One CSV cell, quoted as RFC 4180 says (doubling quotes), so commas, quotes and line breaks survive. */
function cell(v: string | number): string {
  const s = String(v);
  return /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replaceAll('"', '""')}"` : s;
}

/**
 * Events from 2024-05-04 to 2024-05-10 (UTC): every customer views and buys in every category before the
 * training as-of date (so each category is a top category), and about half buy again on 05-09 and 05-10
 * (labels for training and for the scored night).
 */
export function tinyEventsCsv(o: TinyEvents = {}): string {
  const customers = o.customers ?? Array.from({ length: 12 }, (_, i) => `c${String(i).padStart(2, '0')}`);
  const categories = o.categories ?? ['k0', 'k1'];
  const lines = ['cid,ts,kind,item,cat'];
  customers.forEach((cid, c) => {
    categories.forEach((cat, k) => {
      const item = `i${k}`;
      lines.push([cid, START_S + ((c + k) % 4) * DAY_S + 3600, 'view', item, cat].map(cell).join(','));
      lines.push([cid, START_S + ((c + k) % 4) * DAY_S + 7200, 'buy', item, cat].map(cell).join(','));
      if ((c + k) % 2 === 0) lines.push([cid, START_S + 5 * DAY_S + 3600 + k, 'buy', item, cat].map(cell).join(','));
      if ((c + k) % 3 === 0) lines.push([cid, START_S + 6 * DAY_S + 3600 + k, 'buy', item, cat].map(cell).join(','));
    });
  });
  for (let i = 0; i < (o.unknownEvents ?? 0); i++) lines.push([customers[0]!, START_S + 3600 + i, 'wishlist', 'i0', categories[0]!].map(cell).join(','));
  return `${lines.join('\n')}\n`;
}

/** A small, fast job over `events.csv` in `dir`: lstm + attention, 1 epoch, 1 worker, outputs in `dir/out`. */
export function tinyJob(topCategories: number, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    account: 'acme',
    input: { path: 'events.csv', format: 'csv', timeFormat: 'epoch_seconds' },
    columns: { customer: 'cid', time: 'ts', eventType: 'kind', item: 'item', category: 'cat' },
    events: { types: ['view', 'cart', 'buy'], purchase: 'buy' },
    validation: { maxRejectedShare: 0.5 },
    label: { horizonDays: 1 },
    sequence: { lookbackDays: 5, maxLength: 8 },
    vocabulary: { minCount: 1, maxSize: 1000 },
    products: { overall: true, topCategories },
    shards: { count: 2, batchRows: 16 },
    cluster: { workers: 1 },
    model: { architectures: ['lstm', 'attention'], epochs: 1, embeddingDim: 4, hiddenUnits: 4, denseUnits: 4, batchSize: 32 },
    output: { dir: 'out' },
    resources: { memoryLimit: '256MB', threads: 1 },
    ...overrides,
  };
}

/** Writes events.csv and job.yaml into `dir`; returns the job file's path. */
export async function writeTinyRun(dir: string, events: TinyEvents, job: Record<string, unknown>): Promise<string> {
  await writeFile(path.join(dir, 'events.csv'), tinyEventsCsv(events));
  const conf = path.join(dir, 'job.yaml');
  await writeFile(conf, stringify(job));
  return conf;
}

export interface TreeEntry {
  /** Relative to the walked folder. */
  path: string;
  kind: 'file' | 'dir' | 'other';
  /** Permission bits (mode & 0o777). */
  mode: number;
}

/** Every file and folder under `dir` (not following links), sorted. */
export async function walkTree(dir: string): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      const full = path.join(d, name);
      const s = await lstat(full);
      out.push({ path: path.relative(dir, full), kind: s.isDirectory() ? 'dir' : s.isFile() ? 'file' : 'other', mode: s.mode & 0o777 });
      if (s.isDirectory()) await walk(full);
    }
  };
  await walk(dir);
  return out;
}
