/**
 * Finds the input files (a file, a folder or a glob), prunes Hive `date=YYYY-MM-DD/` folders to the window
 * the job needs, and builds the DuckDB table function that reads them, checking that every mapped column exists.
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Job } from '../../jobs/job.js';
import { InputError, JobFileError, SecurityError } from '../../core/errors.js';
import { checkExpression, COLUMN_NAME, isBareIdentifier, mappedFields } from '../../jobs/column-expression.js';
import { sqlIdent, sqlString, type DuckDB } from '../duckdb/index.js';
import { DAY_MS } from '../../jobs/job.js';
import { formatDay } from './windows.js';

export interface InputSource {
  format: 'csv' | 'parquet';
  /** Files that will be read (after Hive pruning). */
  files: string[];
  /** True when every file sits under a `date=YYYY-MM-DD/` folder. */
  hive: boolean;
  /**
   * A subquery over `files`: every input column, plus `source_file` and `source_row` (Parquet: the 0-based
   * row in its file; CSV: the 1-based data row in its file, which ./validate.ts turns into a line number).
   */
  from: string;
  /** A WHERE condition over the Hive partition column that keeps DuckDB to the window ('true' without Hive). */
  partitionFilter: string;
  /** Column name → DuckDB type of the files as read (without the Hive `date` and the source columns). */
  columns: Map<string, string>;
  /** Each mapping of job.columns (its text) → the SQL that reads it and its DuckDB type. */
  mapping: Map<string, { sql: string; type: string }>;
  /** CSV: DuckDB's rejects tables (malformed lines), filled as `from` is read; null for Parquet. */
  rejects: { errors: string; scans: string } | null;
}

/** DuckDB's store for malformed CSV lines (see read_csv store_rejects). */
export const CSV_REJECTS = { errors: 'input_reject_errors', scans: 'input_reject_scans' };

const HIVE_DATE = /(?:^|[\\/])date=(\d{4}-\d{2}-\d{2})(?:[\\/])/;
const GLOB_CHARS = /[*?[{]/;
const EXTENSIONS = { csv: ['.csv', '.csv.gz', '.csv.zst', '.tsv', '.tsv.gz'], parquet: ['.parquet'] } as const;

export async function openInput(db: DuckDB, job: Job, fromMs: number, toMs: number): Promise<InputSource> {
  const format = job.input.format;
  const all = await listInputFiles(db, job.input.path, format);
  if (job.security) await checkInsideRoots(job, all, job.security.inputRoots);
  const dated = all.map((f) => HIVE_DATE.exec(f)?.[1]);
  const hive = all.length > 0 && dated.every((d) => d !== undefined);
  // A partition date=X holds events of day X: keep the days that overlap [fromMs, toMs).
  const firstDay = formatDay(Math.floor(fromMs / DAY_MS) * DAY_MS);
  const endDay = formatDay(Math.ceil(toMs / DAY_MS) * DAY_MS);
  const files = hive ? all.filter((_, i) => dated[i]! >= firstDay && dated[i]! < endDay) : all;
  if (files.length === 0) {
    throw new InputError(
      hive
        ? `no input partitions under ${job.input.path} fall in the window ${firstDay} .. ${endDay} (exclusive) that this date needs: check the date or input.path in ${job.file}`
        : `no ${format} input files found at ${job.input.path}: check input.path (and input.format) in ${job.file}`,
    );
  }
  const from = format === 'parquet' ? parquetSource(files, hive) : csvSource(files, hive);
  // DuckDB prunes with this too; listing the files ourselves makes the pruning provable and countable.
  const partitionFilter = hive ? `(CAST("date" AS VARCHAR) >= ${sqlString(firstDay)} AND CAST("date" AS VARCHAR) < ${sqlString(endDay)})` : 'true';
  const columns = await describe(db, from, job.input.path);
  columns.delete('source_file');
  columns.delete('source_row');
  if (hive) columns.delete('date');
  const mapping = await resolveMapping(db, job, from, columns);
  return { format, files, hive, from, partitionFilter, columns, mapping, rejects: format === 'csv' ? CSV_REJECTS : null };
}

function parquetSource(files: string[], hive: boolean): string {
  const list = `[${files.map(sqlString).join(', ')}]`;
  return `(SELECT *, filename AS source_file, file_row_number AS source_row
    FROM read_parquet(${list}, hive_partitioning = ${hive}, union_by_name = true))`;
}

/**
 * One read_csv per file (DuckDB's rejects store does not combine with union_by_name), united by name.
 * Malformed lines (too few or many fields, bytes that are not UTF-8, …) are skipped and recorded in
 * CSV_REJECTS with their line and DuckDB's reason; row_number() over the file's scan, which DuckDB
 * computes in file order, numbers the data rows.
 */
function csvSource(files: string[], hive: boolean): string {
  const options = `hive_partitioning = ${hive}, all_varchar = true, header = true, store_rejects = true, ` +
    `rejects_table = ${sqlString(CSV_REJECTS.errors)}, rejects_scan = ${sqlString(CSV_REJECTS.scans)}`;
  const one = (f: string) => `SELECT *, filename AS source_file, row_number() OVER () AS source_row FROM read_csv(${sqlString(f)}, ${options})`;
  return `(${files.map(one).join(' UNION ALL BY NAME ')})`;
}

/** Every input file, symlinks followed, must lie inside one of the job's input roots (security.inputRoots). */
async function checkInsideRoots(job: Job, files: string[], roots: string[]): Promise<void> {
  const real = async (p: string) => realpath(p).catch(() => path.resolve(p));
  const realRoots = await Promise.all(roots.map(real));
  for (const f of files) {
    const target = await real(f);
    const inside = realRoots.some((r) => {
      const rel = path.relative(r, target);
      return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
    });
    if (!inside) {
      throw new SecurityError(
        `input file ${f} resolves to ${target}, outside the folders ${job.file} may read (${roots.join(', ')}): list its folder in security.inputRoots if it is meant to be read`,
      );
    }
  }
}

async function listInputFiles(db: DuckDB, input: string, format: 'csv' | 'parquet'): Promise<string[]> {
  const exts = EXTENSIONS[format];
  if (GLOB_CHARS.test(input)) {
    let rows: { file: string }[];
    try {
      rows = await db.all<{ file: string }>(`SELECT file FROM glob(${sqlString(input)}) ORDER BY file`);
    } catch (e) {
      throw new InputError(`cannot list input files matching ${input}: ${(e as Error).message}`, { cause: e });
    }
    return rows.map((r) => r.file);
  }
  let info;
  try {
    info = await stat(input);
  } catch (e) {
    throw new InputError(`input ${input} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): check input.path in the job file`, { cause: e });
  }
  if (!info.isDirectory()) return [input];
  const out: string[] = [];
  for (const entry of await readdir(input, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && exts.some((x) => entry.name.toLowerCase().endsWith(x))) out.push(path.join(entry.parentPath, entry.name));
  }
  return out.sort();
}

async function describe(db: DuckDB, from: string, input: string): Promise<Map<string, string>> {
  try {
    const rows = await db.all<{ column_name: string; column_type: string }>(`DESCRIBE SELECT * FROM ${from}`);
    return new Map(rows.map((r) => [r.column_name, r.column_type]));
  } catch (e) {
    throw new InputError(`cannot read input ${input}: ${firstLine(e)}`, { cause: e });
  }
}

/**
 * Each mapping: a column of the input as it is, or else an expression, checked again here (Jobs built in
 * code skip loadJob) and typed by DuckDB against the input's columns.
 */
async function resolveMapping(db: DuckDB, job: Job, from: string, columns: Map<string, string>): Promise<InputSource['mapping']> {
  const mapping: InputSource['mapping'] = new Map();
  const known = () => [...columns.keys()].join(', ');
  for (const [field, text] of mappedFields(job.columns)) {
    if (mapping.has(text)) continue;
    const type = columns.get(text);
    if (type !== undefined) {
      mapping.set(text, { sql: sqlIdent(text), type });
      continue;
    }
    const checked = await checkExpression(db, text);
    if (!checked.ok) {
      if (isBareIdentifier(text) || COLUMN_NAME.test(text)) {
        throw new InputError(`input column "${text}" (${field} in ${job.file}) is not in the input ${job.input.path}; its columns are: ${known()}. Fix ${field} or the input`);
      }
      throw new JobFileError(job.file, field, `is neither an input column nor an expression nextbuy runs: it holds ${checked.refused}`);
    }
    try {
      const rows = await db.all<{ column_type: string }>(`DESCRIBE SELECT ${checked.sql} AS x FROM ${from}`);
      mapping.set(text, { sql: checked.sql, type: rows[0]!.column_type });
    } catch (e) {
      throw new InputError(`${field} in ${job.file}, "${text}", cannot be computed on the input ${job.input.path}: ${firstLine(e)}. Its columns are: ${known()}`, { cause: e });
    }
  }
  return mapping;
}

export function firstLine(e: unknown): string {
  return String((e as Error).message ?? e).split('\n')[0]!;
}
