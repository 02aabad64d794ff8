/**
 * Actions per product: by score threshold (`minScore`: the highest threshold a score reaches wins) or by
 * share of the product's customers in rank order (`topShare`: the first action takes the top share, the
 * next the following customers, …). Ranks are unique (score descending, then customer id), so a share
 * cut is deterministic however many customers tie at the cut.
 */
import type { DuckDBValue } from '@duckdb/node-api';
import { PublishError } from '../../core/errors.js';
import { NO_ACTION } from './schema.js';
import { safeComponent } from './layout.js';

/** As the job file gives it: by threshold or by share, never both. */
export type ActionRule = { name: string; minScore: number; topShare?: undefined } | { name: string; topShare: number; minScore?: undefined };

/** As one partition applies it; recorded in its manifest. */
export type PartitionAction =
  | { name: string; minScore: number }
  /** Ranks 1 … upToRank not taken by an earlier action (upToRank = ⌊cumulative share × rows⌋). */
  | { name: string; topShare: number; upToRank: number };

/** Checks the rules (the job file did too; this guards direct callers) and puts threshold rules highest first. */
export function checkActions(actions: ActionRule[]): ActionRule[] {
  const names = new Set<string>();
  let shares = 0;
  let total = 0;
  for (const a of actions as { name: string; minScore?: number; topShare?: number }[]) {
    safeComponent('action', a.name);
    if (a.name === NO_ACTION) throw new PublishError(`"${NO_ACTION}" is the action below every threshold; name the action differently`);
    if (names.has(a.name)) throw new PublishError(`action "${a.name}" is listed twice`);
    names.add(a.name);
    if (a.topShare !== undefined) {
      if (a.minScore !== undefined) throw new PublishError(`action "${a.name}" gives both minScore and topShare; keep one`);
      if (!(Number.isFinite(a.topShare) && a.topShare > 0 && a.topShare <= 1)) {
        throw new PublishError(`action "${a.name}" has topShare ${a.topShare}: shares of customers are in (0, 1]`);
      }
      shares++;
      total += a.topShare;
    } else if (!(a.minScore !== undefined && Number.isFinite(a.minScore) && a.minScore >= 0 && a.minScore <= 1)) {
      throw new PublishError(`action "${a.name}" has minScore ${a.minScore}: thresholds are probabilities in [0, 1]`);
    }
  }
  if (shares > 0 && shares < actions.length) throw new PublishError('actions mix topShare and minScore: give every action one kind');
  if (total > 1 + 1e-9) throw new PublishError(`the actions' topShare values sum to ${Number(total.toFixed(6))}, more than 1`);
  if (shares > 0) return actions.map((a) => ({ name: a.name, topShare: a.topShare! }));
  return [...actions].sort((a, b) => b.minScore! - a.minScore!).map((a) => ({ name: a.name, minScore: a.minScore! }));
}

/** The rules as a partition of `rows` customers applies them. */
export function resolveActions(actions: ActionRule[], rows: number): PartitionAction[] {
  let cumulative = 0;
  return actions.map((a) => {
    if (a.topShare === undefined) return { name: a.name, minScore: a.minScore };
    cumulative += a.topShare;
    // The epsilon keeps 0.1 + 0.2 of 10 rows at 3, not 2.
    return { name: a.name, topShare: a.topShare, upToRank: Math.min(rows, Math.floor(cumulative * rows + 1e-9)) };
  });
}

/** SQL for a row's action from its `score` and `rank` columns: the first rule it meets, else 'none'. */
export function actionCase(actions: PartitionAction[]): string {
  const cases = actions.map((a, k) =>
    'upToRank' in a ? `WHEN rank <= $upToRank${k} THEN $action${k}` : `WHEN CAST(score AS DOUBLE) >= $threshold${k} THEN $action${k}`,
  );
  return actions.length > 0 ? `CASE ${cases.join(' ')} ELSE $none END` : '$none';
}

export function actionParams(actions: PartitionAction[]): Record<string, DuckDBValue> {
  const params: Record<string, DuckDBValue> = { none: NO_ACTION };
  actions.forEach((a, k) => {
    if ('upToRank' in a) params[`upToRank${k}`] = a.upToRank;
    else params[`threshold${k}`] = a.minScore;
    params[`action${k}`] = a.name;
  });
  return params;
}

/** Rows per action of share rules, known without reading the scores. */
export function shareActionCounts(actions: PartitionAction[], rows: number): Record<string, number> {
  const counts: Record<string, number> = { [NO_ACTION]: rows };
  let taken = 0;
  for (const a of actions) {
    if (!('upToRank' in a)) throw new PublishError(`action "${a.name}" is a threshold rule; shareActionCounts takes share rules only`);
    counts[a.name] = Math.max(0, a.upToRank - taken);
    taken = Math.max(taken, a.upToRank);
  }
  counts[NO_ACTION] = rows - taken;
  return counts;
}
