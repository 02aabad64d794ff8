/**
 * What must be known before the sequences are built, in one statement: row counts by
 * reject reason (plus out-of-window rows, the valid time range and the freshness counts around D), item and
 * category counts on the training window (vocabularies), purchasing customers per category in the training
 * window (top-category products), and purchases per category (to check products.categories).
 * A GROUPING SETS aggregate and, beside it, the item counts fill a small table (each row's `g` says which
 * counts it holds); the steps then read their part of it.
 */
import { DAY_MS, type Job } from '../../jobs/job.js';
import type { DuckDB } from '../duckdb/index.js';

export const PREPASS = 'prepass';

export interface PrepassPlan {
  events: string;
  /** The window the job needs (outside it valid rows are `outside_window`). */
  fromMs: number;
  toMs: number;
  /** Count items/categories here when the vocabulary is built from data; null when it is given. */
  vocabulary: { fromMs: number; toMs: number } | null;
  /** Count purchasing customers per category in [from, before) when top categories are wanted; else null. */
  productsBeforeMs: number | null;
  productsFromMs?: number;
  /** Count purchases per category over the whole input (to check products.categories). @default false */
  purchasedCategories?: boolean;
  /** D: the freshness check counts valid events of the day before it and of the 7 days before that. */
  scoreDateMs: number;
}

/** Days before the last one that the freshness check compares it with. */
export const FRESHNESS_PRIOR_DAYS = 7;

/** Which rows of the prepass table hold which counts (values of its `g` column). */
export interface PrepassSets {
  reasons: number;
  items: number | null;
  categories: number | null;
  buyers: number | null;
  purchased: number | null;
}

type Key = 'reason' | 'vc' | 'pc' | 'pcust' | 'ac';

/** The `g` of the item counts, which are counted beside the grouping sets (GROUPING() ids are never negative). */
const ITEM_COUNTS = -1;

/** GROUPING(...used) for one set: a bit per used key left out of it, the first key highest. */
function groupingId(used: readonly Key[], keys: readonly Key[]): number {
  return used.reduce((id, k, i) => (keys.includes(k) ? id : id | (1 << (used.length - 1 - i))), 0);
}

export async function runPrepass(db: DuckDB, job: Job, p: PrepassPlan): Promise<PrepassSets> {
  const v = p.vocabulary;
  const inVocab = v ? `reason = 0 AND ts >= ${v.fromMs} AND ts < ${v.toMs}` : 'false';
  const purchase = job.events.types.indexOf(job.events.purchase);
  const buys = p.productsBeforeMs !== null ? `reason = 0 AND e = ${purchase} AND ts < ${p.productsBeforeMs} AND ts >= ${p.productsFromMs ?? Number.MIN_SAFE_INTEGER}` : 'false';
  const sets: Key[][] = [['reason']];
  const countItems = v !== null && job.columns.item !== null;
  if (v && job.columns.category) sets.push(['vc']);
  if (p.productsBeforeMs !== null && job.columns.category) sets.push(['pc', 'pcust']);
  if (p.purchasedCategories && job.columns.category) sets.push(['ac']);
  const used = sets.flat();
  const idOf = (first: Key) => (used.includes(first) ? groupingId(used, sets.find((s) => s[0] === first)!) : null);
  const out: PrepassSets = { reasons: idOf('reason')!, items: countItems ? ITEM_COUNTS : null, categories: idOf('vc'), buyers: idOf('pc'), purchased: idOf('ac') };
  const all: Key[] = ['reason', 'vc', 'pc', 'pcust', 'ac'];
  const d = p.scoreDateMs;
  // The item counts (the largest set by far) are their own aggregate: as one more grouping set they made the
  // others spill with them (100 M events under 2 GB: 15–17 s, against 11.5 s this way; the same at 10 M).
  const items = countItems ? ` UNION ALL BY NAME (SELECT ${ITEM_COUNTS} AS g, item AS vi, count(*)::DOUBLE AS n FROM ${p.events} WHERE ${inVocab} GROUP BY item)` : '';
  await db.run(`CREATE OR REPLACE TABLE ${PREPASS} AS
    (SELECT GROUPING(${used.join(', ')}) AS g, ${all.map((k) => (used.includes(k) ? k : `NULL AS ${k}`)).join(', ')},
      count(*)::DOUBLE AS n,
      count(*) FILTER (WHERE reason = 0 AND (ts < ${p.fromMs} OR ts >= ${p.toMs}))::DOUBLE AS outside,
      min(ts) FILTER (WHERE reason = 0)::DOUBLE AS min_ts,
      max(ts) FILTER (WHERE reason = 0)::DOUBLE AS max_ts,
      max(ts) FILTER (WHERE reason = 0 AND ts < ${d})::DOUBLE AS last_before_d,
      count(*) FILTER (WHERE reason = 0 AND ts >= ${d - DAY_MS} AND ts < ${d})::DOUBLE AS last_day,
      count(*) FILTER (WHERE reason = 0 AND ts >= ${d - (FRESHNESS_PRIOR_DAYS + 1) * DAY_MS} AND ts < ${d - DAY_MS})::DOUBLE AS prior_days
    FROM (
      SELECT reason, ts,
        CASE WHEN ${inVocab} THEN cat END AS vc,
        CASE WHEN ${buys} THEN cat END AS pc,
        CASE WHEN ${buys} THEN customer END AS pcust,
        CASE WHEN reason = 0 AND e = ${purchase} THEN cat END AS ac
      FROM ${p.events})
    GROUP BY GROUPING SETS (${sets.map((s) => `(${s.join(', ')})`).join(', ')}))${items}`);
  return out;
}
