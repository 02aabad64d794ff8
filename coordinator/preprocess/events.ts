/**
 * SQL that turns the input rows into normalised events, each with a reject reason (0 = valid):
 *
 *   customer  BIGINT when the input column is an integer type that fits, else VARCHAR
 *   ts        BIGINT epoch milliseconds UTC (NULL when unparseable)
 *   e         UTINYINT index into job.events.types (NULL when unknown)
 *   item, cat the input values as they are (hashed later, never compared as text per event)
 *   n0, n1 …  DOUBLE, one per numeric feature (NULL when missing or not a number: the feature reads 0)
 *   reason    UTINYINT, the first rule a row breaks, in REASONS order
 *
 * The same expressions serve the statistics, the vocabularies, the sequences and the quarantine, so a row
 * is judged identically everywhere.
 */
import type { Job } from '../../jobs/job.js';
import { sqlIdent, sqlString } from '../duckdb/index.js';
import type { InputSource } from './input.js';

export const REASONS = ['missing_customer', 'customer_line_break', 'bad_time', 'time_out_of_range', 'unknown_event_type', 'negative_value', 'duplicate', 'malformed_line'] as const;
export type RejectReason = (typeof REASONS)[number];
/**
 * reason column value for REASONS[i] is i + 1; duplicates are found later, among valid rows, and malformed
 * lines (CSV lines DuckDB cannot split into the header's fields) never become rows (see ./validate.ts).
 */
export const DUPLICATE_CODE = REASONS.indexOf('duplicate') + 1;

const INTEGER_TYPES = new Set(['TINYINT', 'SMALLINT', 'INTEGER', 'BIGINT', 'UTINYINT', 'USMALLINT', 'UINTEGER']);
const NUMBER_TYPES = new Set([...INTEGER_TYPES, 'UBIGINT', 'HUGEINT', 'UHUGEINT', 'FLOAT', 'DOUBLE']);
const TIME_TYPES = new Set(['TIMESTAMP', 'TIMESTAMP WITH TIME ZONE', 'TIMESTAMP_S', 'TIMESTAMP_MS', 'TIMESTAMP_NS', 'DATE']);

export interface EventsSql {
  /** SELECT … producing the normalised columns above (plus raw_* / source_* when asked). */
  select: string;
  /** 'BIGINT' or 'VARCHAR'. */
  customerType: 'BIGINT' | 'VARCHAR';
  /** DuckDB types of item and category as stored (for casting frozen vocabulary strings back). */
  itemType: string | null;
  categoryType: string | null;
  numericCount: number;
}

export interface EventsSqlOptions {
  /** Also return every input column as VARCHAR (raw_0 …, in rawColumns order) and source_file / source_row. */
  withRaw?: boolean;
}

/** The input columns in the order the quarantine shows them: all of them, as read. */
export function rawColumns(input: InputSource): string[] {
  return [...input.columns.keys()];
}

export function eventsSql(job: Job, input: InputSource, o: EventsSqlOptions = {}): EventsSql {
  const c = job.columns;
  const typeOf = (mapped: string) => input.mapping.get(mapped)!.type.toUpperCase();
  const col = (mapped: string) => input.mapping.get(mapped)!.sql;

  const customerType = INTEGER_TYPES.has(typeOf(c.customer)) ? 'BIGINT' : 'VARCHAR';
  const customer =
    customerType === 'BIGINT'
      ? `CAST(${col(c.customer)} AS BIGINT)`
      : `NULLIF(CAST(${col(c.customer)} AS VARCHAR), '')`;

  const eventType = typeOf(c.eventType) === 'VARCHAR' ? col(c.eventType) : `CAST(${col(c.eventType)} AS VARCHAR)`;
  const e = `CASE ${eventType} ${job.events.types.map((t, i) => `WHEN ${sqlString(t)} THEN ${i}`).join(' ')} END::UTINYINT`;

  const numeric = c.numeric.map((n, i) => `TRY_CAST(${col(n.column)} AS DOUBLE) AS n${i}`);
  const inner = [
    `${customer} AS customer`,
    `${timeSql(col(c.time), typeOf(c.time), job.input.timeFormat)} AS ts`,
    `${e} AS e`,
    `${c.item ? col(c.item) : 'NULL::INTEGER'} AS item`,
    `${c.category ? col(c.category) : 'NULL::INTEGER'} AS cat`,
    ...numeric,
  ];
  if (o.withRaw) {
    rawColumns(input).forEach((name, i) => inner.push(`CAST(${sqlIdent(name)} AS VARCHAR) AS raw_${i}`));
    inner.push(`source_file`, `source_row`);
  }

  const v = job.validation;
  const rules = [
    `customer IS NULL`,
    // A line break in an id splits a row of every CSV made from it (audiences, exports) in the tools that read them.
    customerType === 'VARCHAR' ? `contains(customer, chr(10)) OR contains(customer, chr(13))` : 'false',
    `ts IS NULL`,
    [v.validFromMs !== null ? `ts < ${v.validFromMs}` : null, v.validToMs !== null ? `ts >= ${v.validToMs}` : null].filter(Boolean).join(' OR ') || 'false',
    `e IS NULL`,
    c.numeric.map((n, i) => (n.min !== null ? `n${i} < ${n.min}` : null)).filter(Boolean).join(' OR ') || 'false',
  ];
  const reason = `CASE ${rules.map((r, i) => `WHEN ${r} THEN ${i + 1}`).join(' ')} ELSE 0 END::UTINYINT AS reason`;
  const select = `SELECT *, ${reason} FROM (SELECT ${inner.join(', ')} FROM ${input.from} WHERE ${input.partitionFilter})`;
  return {
    select,
    customerType,
    itemType: c.item ? typeOf(c.item) : null,
    categoryType: c.category ? typeOf(c.category) : null,
    numericCount: c.numeric.length,
  };
}

/** Epoch milliseconds from a time column, per job.input.timeFormat; NULL when it cannot be read. */
function timeSql(x: string, type: string, format: Job['input']['timeFormat']): string {
  const fromNumber = (n: string) => {
    const ms =
      format === 'epoch_seconds' ? `${n} * 1000` : format === 'epoch_millis' ? n : `CASE WHEN abs(${n}) < 1e11 THEN ${n} * 1000 ELSE ${n} END`;
    return `CASE WHEN isfinite(${n}) THEN TRY_CAST(round(${ms}) AS BIGINT) END`;
  };
  const fromIso = (s: string) => `epoch_ms(TRY_CAST(${s} AS TIMESTAMPTZ))`;
  // Zone-less values are read in the session's TimeZone (input.timeZone, set in ./preprocess.ts).
  if (type === 'TIMESTAMP WITH TIME ZONE') return `epoch_ms(${x})`;
  if (TIME_TYPES.has(type)) return `epoch_ms(CAST(CAST(${x} AS TIMESTAMP) AS TIMESTAMPTZ))`;
  if (INTEGER_TYPES.has(type) && format !== 'iso') {
    // Integer arithmetic: cheaper than the DOUBLE path and exact; the bounds keep `* 1000` from overflowing.
    const v = `CAST(${x} AS BIGINT)`;
    const seconds = `CASE WHEN ${v} BETWEEN -9000000000000000 AND 9000000000000000 THEN ${v} * 1000 END`;
    if (format === 'epoch_seconds') return seconds;
    if (format === 'epoch_millis') return v;
    return `CASE WHEN ${v} > -100000000000 AND ${v} < 100000000000 THEN ${v} * 1000 ELSE ${v} END`;
  }
  if (NUMBER_TYPES.has(type) || type.startsWith('DECIMAL')) {
    return format === 'iso' ? 'NULL::BIGINT' : fromNumber(`CAST(${x} AS DOUBLE)`);
  }
  const s = type === 'VARCHAR' ? x : `CAST(${x} AS VARCHAR)`;
  if (format === 'iso') return fromIso(s);
  const n = `TRY_CAST(${s} AS DOUBLE)`;
  if (format !== 'auto') return fromNumber(n);
  return `CASE WHEN ${n} IS NOT NULL THEN ${fromNumber(n)} ELSE ${fromIso(s)} END`;
}
