/**
 * CSV that spreadsheets open safely, as OWASP's "CSV Injection" guidance recommends: a text cell that
 * starts with '=', '+', '-', '@', tab or carriage return gets a single quote in front (a spreadsheet then
 * shows it as text instead of running it as a formula), and every text cell is quoted, so that a separator
 * inside a value (',' or a locale's ';') cannot start a new cell that begins with a formula. Numbers are
 * written as they are. Machine consumers that need the values byte for byte turn the guard off
 * (job file `output.csvFormulaGuard: false`).
 */
import { quoteIdentifier } from './duckdb.js';

export interface CsvColumn {
  name: string;
  /** The SQL expression of the column's value. */
  sql: string;
  /** A text column (guarded and quoted); other columns are numbers. */
  text: boolean;
}

/** The characters a spreadsheet may read as the start of a formula (tab and CR included). */
const FORMULA_STARTS_SQL = "('=', '+', '-', '@', chr(9), chr(13))";

/** `SELECT` list of the columns, text ones neutralised when `guard` is on. */
export function csvSelectList(columns: readonly CsvColumn[], guard: boolean): string {
  return columns.map((c) => `${guard && c.text ? neutralised(c.sql) : c.sql} AS ${quoteIdentifier(c.name)}`).join(', ');
}

/** COPY options for the columns: a header, and with the guard on, every text column quoted. */
export function csvCopyOptions(columns: readonly CsvColumn[], guard: boolean): string {
  const quoted = guard ? columns.filter((c) => c.text).map((c) => quoteIdentifier(c.name)) : [];
  return `FORMAT csv, HEADER true${quoted.length > 0 ? `, FORCE_QUOTE (${quoted.join(', ')})` : ''}`;
}

function neutralised(sql: string): string {
  return `CASE WHEN left(${sql}, 1) IN ${FORMULA_STARTS_SQL} THEN '''' || ${sql} ELSE ${sql} END`;
}
