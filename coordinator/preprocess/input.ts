/**
 * Finds the input files (a file, a folder or a glob), prunes Hive `date=YYYY-MM-DD/` folders to the window
 * the job needs, and builds the DuckDB table function that reads them, checking that every mapped column exists.
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Job } from '../../jobs/job.js';
import { InputError, SecurityError } from '../../core/errors.js';
import { sqlString, type DuckDB } from '../duckdb/index.js';
import { DAY_MS } from '../../jobs/job.js';
import { formatDay } from './windows.js';

export interface InputSource {
  format: 'csv' | 'parquet';
  /** Files that will be read (after Hive pruning). */
  files: string[];
  /** True when every file sits under a `date=YYYY-MM-DD/` folder. */
  hive: boolean;
  /** A table function call over `files`, e.g. read_parquet([...]). */
  from: string;
  /** A WHERE condition over the Hive partition column that keeps DuckDB to the window ('true' without Hive). */
  partitionFilter: string;
  /** Column name → DuckDB type of the files as read. */
  columns: Map<string, string>;
  /** The file-level virtual columns DuckDB offers for this format. */
  hasRowNumber: boolean;
}

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
  const list = `[${files.map(sqlString).join(', ')}]`;
  const common = `hive_partitioning = ${hive}, union_by_name = true`;
  const from =
    format === 'parquet'
      ? `read_parquet(${list}, ${common})`
      : `read_csv(${list}, ${common}, all_varchar = true, header = true)`;
  // DuckDB prunes with this too; listing the files ourselves makes the pruning provable and countable.
  const partitionFilter = hive ? `(CAST("date" AS VARCHAR) >= ${sqlString(firstDay)} AND CAST("date" AS VARCHAR) < ${sqlString(endDay)})` : 'true';
  const columns = await describe(db, from, job.input.path);
  if (hive) columns.delete('date');
  checkColumns(job, columns);
  return { format, files, hive, from, partitionFilter, columns, hasRowNumber: format === 'parquet' };
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

function checkColumns(job: Job, columns: Map<string, string>): void {
  const c = job.columns;
  const mapped: [string, string | null][] = [
    ['columns.customer', c.customer],
    ['columns.time', c.time],
    ['columns.eventType', c.eventType],
    ['columns.item', c.item],
    ['columns.category', c.category],
    ...c.numeric.map((n, i): [string, string] => [`columns.numeric[${i}].column`, n.column]),
  ];
  for (const [field, column] of mapped) {
    if (column !== null && !columns.has(column)) {
      throw new InputError(
        `input column "${column}" (${field} in ${job.file}) is not in the input ${job.input.path}; its columns are: ${[...columns.keys()].join(', ')}. Fix ${field} or the input`,
      );
    }
  }
}

export function firstLine(e: unknown): string {
  return String((e as Error).message ?? e).split('\n')[0]!;
}
