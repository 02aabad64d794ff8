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
import type { InputSource } from './input.js';

export interface ValidationCounts {
  rowsRead: number;
  rejected: Record<RejectReason, number>;
  /** Valid rows outside the window the job needs. */
  outsideWindow: number;
  /** Earliest and latest valid event time (epoch ms), or null when no row is valid. */
  minValidMs: number | null;
  maxValidMs: number | null;
  /** The latest valid event before D (epoch ms), or null; valid events on the day before D and the 7 days before that. */
  lastBeforeMs: number | null;
  lastDayEvents: number;
  priorDaysEvents: number;
}

/** Row counts by reason from the prepass table (see ./prepass.ts); `reasonsSet` is its `g` value for them. */
export async function countReasons(db: DuckDB, prepass: string, reasonsSet: number): Promise<ValidationCounts> {
  const rows = await db.all<{ reason: number; n: number; outside: number; min_ts: number | null; max_ts: number | null; last_before_d: number | null; last_day: number; prior_days: number }>(
    `SELECT reason, n, outside, min_ts, max_ts, last_before_d, last_day, prior_days FROM ${prepass} WHERE g = ${reasonsSet}`,
  );
  let lastBeforeMs: number | null = null;
  let lastDayEvents = 0;
  let priorDaysEvents = 0;
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
      lastBeforeMs = r.last_before_d;
      lastDayEvents = r.last_day;
      priorDaysEvents = r.prior_days;
    } else {
      rejected[REASONS[r.reason - 1]!] = r.n;
    }
  }
  return { rowsRead, rejected, outsideWindow, minValidMs, maxValidMs, lastBeforeMs, lastDayEvents, priorDaysEvents };
}

/** Malformed CSV lines DuckDB skipped while `input.from` was read (0 for Parquet): each (file, line) once. */
export async function countMalformed(db: DuckDB, input: InputSource): Promise<number> {
  if (!input.rejects) return 0;
  const rows = await db.all<{ n: number }>(`SELECT count(*)::DOUBLE AS n FROM (${malformedLinesSql(input.rejects)})`);
  return rows[0]!.n;
}

/** One row per malformed line: its file, its line number, DuckDB's first reason for it, and its text as read. */
function malformedLinesSql(t: { errors: string; scans: string }): string {
  return `SELECT s.file_path AS source_file, e.line::BIGINT AS source_row,
      arg_min(e.error_type || ': ' || e.error_message, e.byte_position) AS detail, any_value(e.csv_line) AS line_text
    FROM ${t.errors} e JOIN ${t.scans} s ON e.scan_id = s.scan_id AND e.file_id = s.file_id
    GROUP BY ALL`;
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
 * Writes `<runDir>/quarantine.parquet`: every input column as VARCHAR (named as in the input), `reason`,
 * `source_file`, `source_row` (Parquet: the 0-based row in its file; CSV: the 1-based line in its file, the
 * header being line 1), and for malformed CSV lines `detail` (DuckDB's reason) and `line_text` (the line as
 * read; the input columns are NULL). Returns null (and removes a stale file) when there is nothing to quarantine.
 */
export async function writeQuarantine(db: DuckDB, input: InputSource, file: string, sources: QuarantineSources, any: boolean): Promise<string | null> {
  await rm(file, { force: true });
  if (!any) return null;
  const names = rawColumns(input);
  const reasonName = `CASE reason ${REASONS.map((r, i) => `WHEN ${i + 1} THEN ${sqlString(r)}`).join(' ')} END`;
  const rows = `SELECT ${names.map((n, i) => `raw_${i} AS ${sqlIdent(n)}`).join(', ')}, ${reasonName} AS reason, source_file, source_row
    FROM (${sources.eventsWithRaw}) WHERE reason > 0`;
  const rejected = sources.duplicates ? `${rows} UNION ALL ${sources.duplicates}` : rows;
  let all = `SELECT *, NULL::VARCHAR AS detail, NULL::VARCHAR AS line_text FROM (${rejected})`;
  if (input.rejects) {
    // CSV data row k of a file is its line k + 1 plus the malformed lines before it (lines DuckDB skipped).
    const malformed = malformedLinesSql(input.rejects);
    const gaps = `SELECT source_file AS f, source_row - row_number() OVER (PARTITION BY source_file ORDER BY source_row) - 1 AS rows_before FROM (${malformed})`;
    all = `WITH gaps AS (${gaps}), r AS (${rejected})
      SELECT * REPLACE (r.source_row + 1 + (SELECT count(*) FROM gaps g WHERE g.f = r.source_file AND g.rows_before < r.source_row) AS source_row),
        NULL::VARCHAR AS detail, NULL::VARCHAR AS line_text FROM r
      UNION ALL
      SELECT ${names.map((n) => `NULL::VARCHAR AS ${sqlIdent(n)}`).join(', ')}, 'malformed_line' AS reason, source_file, source_row, detail, line_text FROM (${malformed})`;
  }
  await db.run(`COPY (SELECT * FROM (${all}) ORDER BY source_file, source_row) TO ${sqlString(file)} (FORMAT parquet)`);
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

