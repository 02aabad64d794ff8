/**
 * One product's rows → one Parquet data file with a content-derived name. Ranking, deciles and actions
 * are computed by DuckDB from the loaded scores; the sort (score descending, then customer_id) fixes the
 * row order, and DuckDB's Parquet writer was checked to give identical bytes for identical rows at 1, 2,
 * 4 and 8 threads, so a rerun on the same inputs writes the same file under the same name.
 */
import type { DuckDBConnection, DuckDBValue } from '@duckdb/node-api';
import path from 'node:path';
import { PublishError } from '../../core/errors.js';
import { commitRename, fsyncFile, sha256File, tempSibling } from '../../core/durable-fs.js';
import { currentFileModes, setFileMode, type FileModes } from '../../core/file-modes.js';
import { quoteIdentifier } from './duckdb.js';
import type { ManifestFile } from './manifest.js';
import { actionCase, actionParams, shareActionCounts, type PartitionAction } from './actions.js';
import { NO_ACTION, parquetOptions, type ParquetCompression } from './schema.js';

export interface PartitionConstants {
  product: string;
  modelVersion: string;
  runId: string;
  scoredAt: string;
  /** As resolved for this partition's rows (threshold rules highest first, or share rules in order). */
  actions: PartitionAction[];
  compression: ParquetCompression;
}

/** Where a product's rows come from: `SELECT customer_id, <column> AS score FROM <table>`. */
export interface ScoreSource {
  table: string;
  column: string;
}

function sourceSql(source: ScoreSource): string {
  return `(SELECT customer_id, ${quoteIdentifier(source.column)} AS score FROM ${quoteIdentifier(source.table)})`;
}

/** The prediction rows of a source, in rank order. */
export function predictionSelect(source: ScoreSource, actions: PartitionAction[]): string {
  return `
    WITH ranked AS (
      SELECT customer_id, score, row_number() OVER (ORDER BY score DESC, customer_id ASC) AS rank
      FROM ${sourceSql(source)}
    )
    SELECT customer_id,
           $product AS product,
           score,
           CAST(rank AS INTEGER) AS rank,
           CAST((rank - 1) * 10 // $rows + 1 AS INTEGER) AS decile,
           ${actionCase(actions)} AS action,
           $modelVersion AS model_version,
           $runId AS run_id,
           CAST($scoredAt AS TIMESTAMP WITH TIME ZONE) AS scored_at
    FROM ranked
    ORDER BY rank`;
}

export function predictionParams(c: PartitionConstants, rows: number): Record<string, DuckDBValue> {
  return {
    ...actionParams(c.actions),
    product: c.product,
    rows: Math.max(rows, 1),
    modelVersion: c.modelVersion,
    runId: c.runId,
    scoredAt: c.scoredAt,
  };
}

export interface WrittenFile extends ManifestFile {
  actionCounts: Record<string, number>;
}

/**
 * Writes the table's rows to `<dir>/part-<sha256 prefix>.parquet` via a temporary file that is fsynced
 * before the rename, with `modes.file` as its permissions. `beforeRename` runs with the complete temporary
 * file on disk (a crash point).
 */
export async function writePartitionFile(
  connection: DuckDBConnection,
  source: ScoreSource,
  dir: string,
  constants: PartitionConstants,
  rows: number,
  beforeRename: () => void,
  modes: FileModes = currentFileModes(),
): Promise<WrittenFile> {
  const tmp = tempSibling(path.join(dir, 'part.parquet'));
  try {
    await connection.run(`COPY (${predictionSelect(source, constants.actions)}) TO $target (${parquetOptions(constants.compression)})`, {
      ...predictionParams(constants, rows),
      target: tmp,
    });
  } catch (e) {
    throw new PublishError(`writing the ${constants.product} partition to ${dir} failed: ${(e as Error).message}`, { cause: e });
  }
  await setFileMode(tmp, modes); // DuckDB created it under the umask
  await fsyncFile(tmp);
  beforeRename();
  const { sha256, bytes } = await sha256File(tmp);
  const name = `part-${sha256.slice(0, 16)}.parquet`;
  await commitRename(tmp, path.join(dir, name));

  const actionCounts = await countActions(connection, source, constants.actions, rows);
  return { name, rows, bytes, sha256, actionCounts };
}

/** Rows per action, 'none' included: arithmetic for share rules, a query for thresholds (compared as the file's rows are). */
async function countActions(connection: DuckDBConnection, source: ScoreSource, actions: PartitionAction[], rows: number): Promise<Record<string, number>> {
  if (actions.length > 0 && actions.every((a) => 'upToRank' in a)) return shareActionCounts(actions, rows);
  const counted = await connection.runAndReadAll(
    `SELECT ${actionCase(actions)} AS action, count(*) FROM ${sourceSql(source)} GROUP BY action`,
    actionParams(actions),
  );
  const actionCounts: Record<string, number> = Object.fromEntries([NO_ACTION, ...actions.map((a) => a.name)].map((a) => [a, 0]));
  for (const [action, count] of counted.getRowsJS()) actionCounts[String(action)] = Number(count);
  return actionCounts;
}
