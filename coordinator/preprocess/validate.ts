/**
 * Validation by rule: rows counted by reject reason, rejected rows written to one quarantine file the user
 * can open, and the run stopped (InputError) only when the rejected share passes the job's threshold.
 */
import { rm } from 'node:fs/promises';
import type { Job } from '../../jobs/job.js';
import { InputError } from '../../core/errors.js';
import { setFileMode } from '../../core/file-modes.js';
import { sqlIdent, sqlString, type DuckDB } from '../duckdb/index.js';
import { REASONS, rawColumns, type RejectReason } from './events.js';

export interface ValidationCounts {
  rowsRead: number;
  rejected: Record<RejectReason, number>;
  /** Valid rows outside the window the job needs. */
  outsideWindow: number;
  /** Earliest and latest valid event time (epoch ms), or null when no row is valid. */
  minValidMs: number | null;
  maxValidMs: number | null;
}

/** Row counts by reason from the prepass table (see ./prepass.ts); `reasonsSet` is its `g` value for them. */
export async function countReasons(db: DuckDB, prepass: string, reasonsSet: number): Promise<ValidationCounts> {
  const rows = await db.all<{ reason: number; n: number; outside: number; min_ts: number | null; max_ts: number | null }>(
    `SELECT reason, n, outside, min_ts, max_ts FROM ${prepass} WHERE g = ${reasonsSet}`,
  );
  const rejected = Object.fromEntries(REASONS.map((r) => [r, 0])) as Record<RejectReason, number>;
  let rowsRead = 0;
  let outsideWindow = 0;
  let minValidMs: number | null = null;
  let maxValidMs: number | null = null;
  for (const r of rows) {
    rowsRead += r.n;
    if (r.reason === 0) {
      outsideWindow = r.outside;
      minValidMs = r.min_ts;
      maxValidMs = r.max_ts;
    } else {
      rejected[REASONS[r.reason - 1]!] = r.n;
    }
  }
  return { rowsRead, rejected, outsideWindow, minValidMs, maxValidMs };
}

export function rejectedTotal(rejected: Record<RejectReason, number>): number {
  return REASONS.reduce((sum, r) => sum + rejected[r], 0);
}

export interface QuarantineSources {
  /** SELECT over the events with raw columns (eventsSql withRaw) — rows with reason > 0 are quarantined. */
  eventsWithRaw: string;
  /** A SELECT of duplicate rows already shaped like the quarantine, or null. */
  duplicates: string | null;
}

/**
 * Writes `<runDir>/quarantine.parquet`: the mapped input columns as VARCHAR (named as in the input), `reason`,
 * `source_file` and `source_row` (0-based row in a Parquet file; NULL for CSV). Returns null (and removes a
 * stale file) when there is nothing to quarantine.
 */
export async function writeQuarantine(db: DuckDB, job: Job, file: string, sources: QuarantineSources, any: boolean): Promise<string | null> {
  await rm(file, { force: true });
  if (!any) return null;
  const names = rawColumns(job);
  const reasonName = `CASE reason ${REASONS.map((r, i) => `WHEN ${i + 1} THEN ${sqlString(r)}`).join(' ')} END`;
  const shaped = `SELECT ${names.map((n, i) => `raw_${i} AS ${sqlIdent(n)}`).join(', ')}, ${reasonName} AS reason, source_file, source_row
    FROM (${sources.eventsWithRaw}) WHERE reason > 0`;
  const all = sources.duplicates ? `${shaped} UNION ALL ${sources.duplicates}` : shaped;
  await db.run(`COPY (${all} ORDER BY source_file, source_row) TO ${sqlString(file)} (FORMAT parquet)`);
  await setFileMode(file); // DuckDB created it under the umask
  return file;
}

/** Throws when more than job.validation.maxRejectedShare of the rows read were rejected. */
export function checkThreshold(job: Job, counts: { rowsRead: number; rejected: Record<RejectReason, number> }, quarantineFile: string | null): void {
  const total = rejectedTotal(counts.rejected);
  const share = counts.rowsRead === 0 ? 0 : total / counts.rowsRead;
  const limit = job.validation.maxRejectedShare;
  if (share <= limit) return;
  const top = REASONS.filter((r) => counts.rejected[r] > 0)
    .sort((a, b) => counts.rejected[b] - counts.rejected[a])
    .slice(0, 3)
    .map((r) => `${r} ${counts.rejected[r].toLocaleString('en-US')}`)
    .join(', ');
  throw new InputError(
    `${pct(share)} of the ${counts.rowsRead.toLocaleString('en-US')} input rows were rejected, more than the ${pct(limit)} allowed ` +
      `(top reasons: ${top}). The rejected rows are in ${quarantineFile ?? '(no quarantine file)'}; ` +
      `fix the input or the column mapping, or raise validation.maxRejectedShare in ${job.file}`,
  );
}

function pct(x: number): string {
  const p = x * 100;
  return `${p >= 10 ? p.toFixed(1) : p >= 0.1 ? p.toFixed(2) : p.toPrecision(2)} %`;
}

