/**
 * Vocabularies and products: built on the training window, frozen with the model version (saved as JSON
 * and given back to preprocess to score with a model trained earlier).
 *
 * Ids: 0 = padding, 1 = unknown, 2.. = tokens in Vocabulary order (most frequent first, ties by value,
 * count ≥ minCount, at most maxSize). Event types are always job.events.types in their given order.
 */
import { readFile } from 'node:fs/promises';
import { writeFileDurably } from '../../core/durable-fs.js';
import type { Job } from '../../jobs/job.js';
import { InputError } from '../../core/errors.js';
import { pathComponent } from '../../core/path-component.js';
import { columnReader, type DuckDB } from '../duckdb/index.js';
import { Int64Map } from './hash.js';

export interface Vocabulary {
  item?: string[];
  category?: string[];
  event: string[];
}

export interface Product {
  name: string;
  /** null for `any` (any purchase). */
  category: string | null;
}

export const PAD_ID = 0;
export const UNKNOWN_ID = 1;
export const FIRST_TOKEN_ID = 2;
const VOCABULARY_FORMAT = 'nextbuy.vocabulary/1';

/** Where the prepass (./prepass.ts) left its counts: the table and the `g` values of its grouping sets. */
export interface PrepassCounts {
  table: string;
  items: number | null;
  categories: number | null;
  buyers: number | null;
  /** Purchases per category over the whole input (`ac`), when products.categories are checked. */
  purchased?: number | null;
}

export async function buildVocabulary(db: DuckDB, job: Job, counts: PrepassCounts): Promise<Vocabulary> {
  const v: Vocabulary = { event: [...job.events.types] };
  if (job.columns.item) v.item = await topValues(db, 'vi', counts.table, counts.items!, job);
  if (job.columns.category) v.category = await topValues(db, 'vc', counts.table, counts.categories!, job);
  return v;
}

async function topValues(db: DuckDB, column: 'vi' | 'vc', table: string, set: number, job: Job): Promise<string[]> {
  const rows = await db.all<{ v: string }>(`
    SELECT CAST(${column} AS VARCHAR) AS v FROM ${table}
    WHERE g = ${set} AND ${column} IS NOT NULL AND n >= ${job.vocabulary.minCount}
    ORDER BY n DESC, ${column} ASC LIMIT ${job.vocabulary.maxSize}`);
  return rows.map((r) => r.v);
}

/** `any` (when job.products.overall), job.products.categories, then the top categories by distinct buyers in the training window [D − H − L, D). */
export async function buildProducts(db: DuckDB, job: Job, counts: PrepassCounts): Promise<Product[]> {
  const products: Product[] = job.products.overall ? [{ name: 'any', category: null }] : [];
  const wanted = [...job.products.categories];
  if ((wanted.length > 0 || job.products.topCategories > 0) && !job.columns.category) {
    throw new InputError(`products.categories and products.topCategories need a category column: set columns.category in ${job.file}`);
  }
  if (wanted.length > 0 && counts.purchased != null) await checkListedCategories(db, job, counts.table, counts.purchased, wanted);
  if (job.products.topCategories > 0) {
    const rows = await db.all<{ v: string }>(`
      SELECT CAST(pc AS VARCHAR) AS v FROM ${counts.table}
      WHERE g = ${counts.buyers} AND pc IS NOT NULL AND pcust IS NOT NULL
      GROUP BY pc ORDER BY count(*) DESC, pc ASC LIMIT ${job.products.topCategories}`);
    wanted.push(...rows.map((r) => r.v));
  }
  for (const c of wanted) if (!products.some((p) => p.category === c)) products.push({ name: c, category: c });
  if (products.length === 0) {
    throw new InputError(`the job models no product: set products.overall: true or list products.categories in ${job.file}`);
  }
  checkProductFolders(job, products);
  return products;
}

/** A listed category no purchase in the input has is an error naming it and the closest categories that have some. */
async function checkListedCategories(db: DuckDB, job: Job, table: string, set: number, wanted: string[]): Promise<void> {
  const rows = await db.all<{ v: string }>(`SELECT CAST(ac AS VARCHAR) AS v FROM ${table} WHERE g = ${set} AND ac IS NOT NULL`);
  const known = new Set(rows.map((r) => r.v));
  const missing = wanted.filter((c) => !known.has(c));
  if (missing.length === 0) return;
  const c = missing[0]!;
  const closest = [...known].map((k) => [k, editDistance(c, k)] as const).sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 3).map(([k]) => `"${k}"`);
  throw new InputError(
    `products.categories lists "${c}"${missing.length > 1 ? ` (and ${missing.length - 1} more: ${missing.slice(1, 4).join(', ')})` : ''}, but no purchase in the input ${job.input.path} has that category` +
      `${closest.length > 0 ? `; the closest categories with purchases are ${closest.join(', ')}` : '; the input has no purchase with a category'}: fix products.categories in ${job.file}`,
  );
}

/** Levenshtein distance (small strings: category names). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * A product's name is a category value from the data: it becomes folder names (checkpoints, models,
 * partitions, audiences) only through pathComponent, checked here, as it is chosen and before any
 * training, to give every product a folder of its own.
 */
function checkProductFolders(job: Job, products: Product[]): void {
  const seen = new Map<string, string>();
  for (const p of products) {
    const folder = pathComponent(p.name);
    const other = seen.get(folder);
    if (other === p.name) {
      throw new InputError(`a category is named "${p.name}", like the overall product: set products.overall: false or list the categories to model in products.categories (${job.file})`);
    }
    if (other !== undefined) {
      throw new InputError(`products ${JSON.stringify(other)} and ${JSON.stringify(p.name)} would share the folder name "${folder}": list the categories to model in products.categories (${job.file})`);
    }
    seen.set(folder, p.name);
  }
}

/**
 * DuckDB hash() of each value cast back to the input column's own type (null where it does not cast), so
 * the event stream can carry a 64-bit hash per item and JavaScript can match it with one table probe.
 */
export async function hashesOf(db: DuckDB, values: readonly string[], type: string): Promise<([number, number] | null)[]> {
  const out: ([number, number] | null)[] = values.map(() => null);
  if (values.length === 0) return out;
  const table = `hash_input_${process.pid}_${Math.random().toString(36).slice(2)}`;
  await db.run(`CREATE TABLE ${table} (i INTEGER, v VARCHAR)`);
  try {
    const appender = await db.connection.createAppender(table);
    try {
      values.forEach((v, i) => {
        appender.appendInteger(i);
        appender.appendVarchar(v);
        appender.endRow();
      });
    } finally {
      appender.closeSync();
    }
    for await (const chunk of db.stream(`SELECT i, hash(TRY_CAST(v AS ${type})) AS h FROM ${table} WHERE TRY_CAST(v AS ${type}) IS NOT NULL`)) {
      const r = columnReader(chunk);
      const index = r.int32(0);
      const h = r.int64Halves(1);
      for (let k = 0; k < r.rows; k++) out[index[k]!] = [h[2 * k]!, h[2 * k + 1]!];
    }
  } finally {
    await db.run(`DROP TABLE IF EXISTS ${table}`);
  }
  return out;
}

/** Vocabulary tokens → ids (FIRST_TOKEN_ID + position), keyed by their hashes; anything else reads UNKNOWN_ID. */
export async function tokenIds(db: DuckDB, tokens: readonly string[], type: string): Promise<Int64Map> {
  const map = new Int64Map(tokens.length, UNKNOWN_ID);
  (await hashesOf(db, tokens, type)).forEach((h, i) => {
    if (h) map.set(h[0], h[1], FIRST_TOKEN_ID + i);
  });
  return map;
}

export async function saveVocabulary(file: string, v: Vocabulary): Promise<void> {
  await writeFileDurably(file, `${JSON.stringify({ format: VOCABULARY_FORMAT, ...v })}\n`);
}

export async function loadVocabulary(file: string): Promise<Vocabulary> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new InputError(`vocabulary ${file} cannot be read: ${(e as Error).message}`, { cause: e });
  }
  const o = raw as Record<string, unknown>;
  const strings = (x: unknown) => Array.isArray(x) && x.every((s) => typeof s === 'string');
  if (o?.format !== VOCABULARY_FORMAT || !strings(o.event) || (o.item !== undefined && !strings(o.item)) || (o.category !== undefined && !strings(o.category))) {
    throw new InputError(`${file} is not a nextbuy vocabulary (${VOCABULARY_FORMAT}): save it with saveVocabulary()`);
  }
  const v: Vocabulary = { event: o.event as string[] };
  if (o.item !== undefined) v.item = o.item as string[];
  if (o.category !== undefined) v.category = o.category as string[];
  return v;
}

