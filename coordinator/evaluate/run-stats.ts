/**
 * The report's "Run statistics" for people: each figure with a label and its unit, rejected rows by reason,
 * durations per stage in ms, s or min. report.json keeps the figures as numbers under the keys below;
 * keys this module does not know are still shown, their names spelt out in words and nested objects
 * flattened into rows, never as a JSON blob.
 */

/** What the evaluate stage records; every field optional (a report built elsewhere gives what it knows). */
export interface RunStatistics {
  inputFiles?: number;
  rowsRead?: number;
  rowsAccepted?: number;
  /** Rejected rows by reason (validation's reasons, e.g. time_out_of_range). */
  rowsRejected?: Record<string, number>;
  /** Valid rows outside the lookback and label windows. */
  outsideWindow?: number;
  trainCustomers?: number;
  scoredCustomers?: number;
  /** Customers of the score set with no event in the lookback. */
  scoredWithoutHistory?: number;
  trainSequences?: number;
  scoreSequences?: number;
  shards?: number;
  /** Duration per stage in milliseconds (the stages that had finished when the report was written). */
  stageMs?: Record<string, number>;
  /** Worker processes or pods this invocation asked for. */
  workers?: number;
  workersLost?: number;
  shardRetries?: number;
  evaluatedOn?: string;
  staleInputAllowed?: string;
  baselines?: string;
}

export interface StatRow {
  label: string;
  value: string;
  /** A sub-row (a reason under "Rows rejected", a stage under "Duration"). */
  indent: boolean;
}

type Unit = 'rows' | 'customers' | 'sequences' | 'shards' | 'files' | 'workers' | 'retries' | 'text';

const KNOWN: Record<string, [label: string, unit: Unit]> = {
  inputFiles: ['Input files', 'files'],
  rowsRead: ['Rows read', 'rows'],
  rowsAccepted: ['Rows accepted', 'rows'],
  rowsRejected: ['Rows rejected', 'rows'],
  outsideWindow: ['Valid rows outside the windows', 'rows'],
  trainCustomers: ['Customers, training set', 'customers'],
  scoredCustomers: ['Customers scored', 'customers'],
  scoredWithoutHistory: ['Customers scored without history', 'customers'],
  trainSequences: ['Sequences, training set', 'sequences'],
  scoreSequences: ['Sequences, score set', 'sequences'],
  shards: ['Shards', 'shards'],
  workers: ['Workers', 'workers'],
  workersLost: ['Workers lost', 'workers'],
  shardRetries: ['Shards leased again after a failure', 'retries'],
  evaluatedOn: ['Evaluated on', 'text'],
  staleInputAllowed: ['Stale input allowed', 'text'],
  baselines: ['Baselines', 'text'],
};

export function statRows(stats: RunStatistics | Record<string, unknown>): StatRow[] {
  const rows: StatRow[] = [];
  for (const [key, value] of Object.entries(stats) as [string, unknown][]) {
    if (value === undefined || value === null) continue;
    if (key === 'rowsRejected' && isRecord(value)) {
      const counts = Object.entries(value).filter((e): e is [string, number] => typeof e[1] === 'number');
      const total = counts.reduce((s, [, n]) => s + n, 0);
      rows.push({ label: 'Rows rejected', value: withUnit(total, 'rows'), indent: false });
      for (const [reason, n] of counts) if (n > 0) rows.push({ label: words(reason), value: withUnit(n, 'rows'), indent: true });
      continue;
    }
    if (key === 'stageMs' && isRecord(value)) {
      const entries = Object.entries(value).filter((e): e is [string, number] => typeof e[1] === 'number');
      rows.push({ label: 'Duration by stage', value: formatDuration(entries.reduce((s, [, ms]) => s + ms, 0)) + ' in all', indent: false });
      for (const [stage, ms] of entries) rows.push({ label: stage, value: formatDuration(ms), indent: true });
      continue;
    }
    const known = KNOWN[key];
    const label = known?.[0] ?? words(key);
    if (isRecord(value)) {
      rows.push({ label, value: '', indent: false });
      for (const [k, v] of Object.entries(value)) rows.push({ label: words(k), value: plain(v), indent: true });
      continue;
    }
    rows.push({ label, value: typeof value === 'number' && known ? withUnit(value, known[1]) : plain(value), indent: false });
  }
  return rows;
}

/** The `stageMs` figure from a run's stage timings: whole milliseconds, stages without a time left out; undefined when none. */
export function stageMs(timings: Partial<Record<string, number>> | undefined): Record<string, number> | undefined {
  const entries = Object.entries(timings ?? {}).filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1]));
  return entries.length > 0 ? Object.fromEntries(entries.map(([stage, ms]) => [stage, Math.round(ms)])) : undefined;
}

/** 850 ms, 12.3 s, 4 min 05 s, 2 h 03 min. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  const m = Math.round(s / 60);
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

function withUnit(n: number, unit: Unit): string {
  const figure = n.toLocaleString('en-US');
  if (unit === 'text') return figure;
  const singular = { rows: 'row', customers: 'customer', sequences: 'sequence', shards: 'shard', files: 'file', workers: 'worker', retries: 'retry' }[unit];
  return `${figure} ${n === 1 ? singular : unit}`;
}

function plain(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? v.toLocaleString('en-US') : String(Number(v.toPrecision(6)));
  if (Array.isArray(v)) return v.map(plain).join(', ');
  if (isRecord(v)) return Object.entries(v).map(([k, x]) => `${words(k)} ${plain(x)}`).join(', ');
  return String(v);
}

/** rowsRead → "Rows read"; time_out_of_range → "Time out of range". */
export function words(key: string): string {
  const spaced = key
    .replaceAll('_', ' ')
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .trim();
  return spaced.charAt(0).toUpperCase() + spaced.slice(1);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
