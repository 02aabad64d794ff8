/**
 * The committed table in other shapes: a DuckDB table for SQL, and CSV for tools that want text.
 * Both read only the files the manifests list, after checking their checksums.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { rm } from 'node:fs/promises';
import { makeDir, setFileMode } from '../../core/file-modes.js';
import path from 'node:path';
import { PublishError } from '../../core/errors.js';
import { commitRename, fsyncFile, tempSibling } from '../../core/durable-fs.js';
import { csvCopyOptions, csvSelectList, type CsvColumn } from './csv-guard.js';
import { quoteIdentifier, withDuckDB } from './duckdb.js';
import { safeComponent, safeDate } from './layout.js';
import { committedPartitions, COMMITTED_FILES, filesList, type CommittedPartition } from './read.js';
import { ISO_TIMESTAMP_SQL, PREDICTION_SCHEMA } from './schema.js';

export interface LoadedTable {
  table: string;
  rows: number;
  /** The products loaded, with the run id that committed each. */
  partitions: { product: string; runId: string; rows: number }[];
}

/**
 * Creates (or replaces) `tableName` on the caller's connection with every committed partition of the
 * account and date: columns account, date, then the prediction table's columns.
 */
export async function loadPredictionsIntoDuckDB(
  connection: DuckDBConnection,
  outDir: string,
  account: string,
  date: string,
  tableName: string,
): Promise<LoadedTable> {
  const partitions = await requireCommitted(outDir, account, date);
  const files = partitions.flatMap((p) => p.files);
  await connection.run(
    `CREATE OR REPLACE TABLE ${quoteIdentifier(tableName)} AS
       SELECT CAST($account AS VARCHAR) AS account, CAST($date AS DATE) AS date, ${columnList()}
       FROM ${COMMITTED_FILES}`,
    { account, date, files: filesList(files) },
  );
  const counted = await connection.runAndReadAll(`SELECT count(*) FROM ${quoteIdentifier(tableName)}`);
  return {
    table: tableName,
    rows: Number(counted.getRows()[0]![0]),
    partitions: partitions.map((p) => ({ product: p.product, runId: p.manifest.runId, rows: p.manifest.rowCount })),
  };
}

export interface ExportCsvOptions {
  outDir: string;
  account: string;
  date: string;
  /** @default <outDir>/exports/account=<account>/date=<date>/predictions.csv */
  file?: string;
  /** Neutralise cells a spreadsheet would run as formulas (./csv-guard.ts). @default true */
  csvFormulaGuard?: boolean;
}

/**
 * Every committed partition of the date as one CSV (header; products by name, rows by rank), scored_at in ISO 8601
 * UTC, text cells guarded against formula injection unless told otherwise; written atomically.
 */
export async function exportCsv(o: ExportCsvOptions): Promise<{ file: string; rows: number }> {
  const partitions = await requireCommitted(o.outDir, o.account, o.date);
  const file =
    o.file ?? path.join(o.outDir, 'exports', `account=${safeComponent('account', o.account)}`, `date=${safeDate(o.date)}`, 'predictions.csv');
  await makeDir(path.dirname(file));
  const tmp = tempSibling(file);
  try {
    await withDuckDB({}, async (connection) => {
      const guard = o.csvFormulaGuard ?? true;
      const columns: CsvColumn[] = PREDICTION_SCHEMA.map((c) =>
        c.name === 'scored_at' ? { name: c.name, sql: ISO_TIMESTAMP_SQL, text: false } : { name: c.name, sql: quoteIdentifier(c.name), text: c.type === 'VARCHAR' },
      );
      await connection.run(
        // Ordered explicitly: DuckDB keeps the files' order for a plain projection, but not once the guard's CASE is in it.
        `COPY (SELECT ${csvSelectList(columns, guard)} FROM read_parquet($files, hive_partitioning = false, filename = true) AS t
           ORDER BY list_position($files, t.filename), t.rank) TO $target (${csvCopyOptions(columns, guard)})`,
        { files: filesList(partitions.flatMap((p) => p.files)), target: tmp },
      );
    });
    await setFileMode(tmp);
    await fsyncFile(tmp);
    await commitRename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  return { file, rows: partitions.reduce((sum, p) => sum + p.manifest.rowCount, 0) };
}

export async function requireCommitted(outDir: string, account: string, date: string): Promise<CommittedPartition[]> {
  const partitions = await committedPartitions(outDir, account, date);
  if (partitions.length === 0) {
    throw new PublishError(`no committed prediction partitions for account=${account} date=${date} under ${outDir}; run publish for that date first`);
  }
  return partitions;
}

function columnList(): string {
  return PREDICTION_SCHEMA.map((c) => quoteIdentifier(c.name)).join(', ');
}
