/**
 * Readers that honour the manifest: a partition is what its `_manifest.json` lists, checked against the
 * recorded sizes and sha256 sums, and nothing else in its folder.
 */
import { listValue, type DuckDBListValue } from '@duckdb/node-api';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PublishError } from '../../core/errors.js';
import { sha256File } from '../../core/durable-fs.js';
import { withDuckDB } from './duckdb.js';
import { manifestPath, readManifest, type PartitionManifest } from './manifest.js';
import { dateDir, partitionDir, productFolder, productFolders, safeComponent } from './layout.js';
import { ISO_TIMESTAMP_SQL, type PredictionRow } from './schema.js';

/**
 * The committed files as a relation (bind the list as $files). Hive partitioning is off: the folders'
 * account=/date=/product= names must not become columns (product is already one, with the same value).
 */
export const COMMITTED_FILES = 'read_parquet($files, hive_partitioning = false)';

export function filesList(files: readonly string[]): DuckDBListValue {
  return listValue([...files]);
}

export interface CommittedPartition {
  product: string;
  dir: string;
  manifest: PartitionManifest;
  /** Absolute paths of the data files, in manifest order. */
  files: string[];
}

export interface ReadOptions {
  /** Check every data file's size and sha256 against the manifest. @default true */
  verify?: boolean;
}

/**
 * The committed partitions of an account and date, by product name; folders without a manifest are not
 * committed. Each partition's product is the name its manifest records.
 */
export async function committedPartitions(
  outDir: string,
  account: string,
  date: string,
  options: ReadOptions = {},
): Promise<CommittedPartition[]> {
  const partitions: CommittedPartition[] = [];
  const parent = dateDir(outDir, account, date);
  for (const folder of await productFolders(parent)) {
    const dir = path.join(parent, folder);
    const found = await consistentRead(dir, () => verifiedPartition(dir, null, options));
    if (found) partitions.push(found);
  }
  return partitions.sort((a, b) => (a.product < b.product ? -1 : a.product > b.product ? 1 : 0));
}

export async function committedPartition(
  outDir: string,
  account: string,
  date: string,
  product: string,
  options: ReadOptions = {},
): Promise<CommittedPartition | null> {
  const dir = partitionDir(outDir, account, date, product);
  return consistentRead(dir, () => verifiedPartition(dir, product, options));
}

/** `product`: the name the caller asked for, or null to take the manifest's (which must belong in this folder either way). */
async function verifiedPartition(dir: string, asked: string | null, options: ReadOptions): Promise<CommittedPartition | null> {
  const manifest = await readManifest(dir);
  if (!manifest) return null;
  const product = manifest.product;
  if ((asked !== null && product !== asked) || productFolder(product) !== path.basename(dir)) {
    throw new PublishError(`${dir}: its manifest is for another product; the partition is damaged, rerun publish for this date`);
  }
  const files = manifest.files.map((f) => path.join(dir, safeComponent('data file', f.name)));
  if (options.verify ?? true) {
    for (const [k, f] of manifest.files.entries()) {
      let actual;
      try {
        actual = await sha256File(files[k]!);
      } catch (e) {
        throw new PublishError(`${dir}: data file ${f.name} listed in the manifest cannot be read (${(e as Error).message}); rerun publish for this date`, {
          cause: e,
        });
      }
      if (actual.bytes !== f.bytes || actual.sha256 !== f.sha256) {
        throw new PublishError(`${dir}: data file ${f.name} does not match its manifest checksum; the partition is damaged, rerun publish for this date`);
      }
    }
  }
  return { product, dir, manifest, files };
}

export interface PartitionContents {
  manifest: PartitionManifest;
  /** In rank order. */
  rows: PredictionRow[];
}

/** One committed partition's rows (verified), or null when it was never committed. */
export async function readPartition(outDir: string, account: string, date: string, product: string): Promise<PartitionContents | null> {
  const dir = partitionDir(outDir, account, date, product);
  return consistentRead(dir, async () => {
    const partition = await verifiedPartition(dir, product, {});
    return partition ? { manifest: partition.manifest, rows: await readRows(partition) } : null;
  });
}

async function readRows(partition: CommittedPartition): Promise<PredictionRow[]> {
  const rows = await withDuckDB({}, async (connection) => {
    const reader = await connection.runAndReadAll(
      `SELECT customer_id, product, CAST(score AS DOUBLE) AS score, rank, decile, action, model_version, run_id,
              ${ISO_TIMESTAMP_SQL} AS scored_at
         FROM ${COMMITTED_FILES} ORDER BY rank`,
      { files: filesList(partition.files) },
    );
    return reader.getRowObjectsJS() as unknown as PredictionRow[];
  });
  if (rows.length !== partition.manifest.rowCount) {
    throw new PublishError(
      `${partition.dir}: the data files hold ${rows.length} rows but the manifest says ${partition.manifest.rowCount}; rerun publish for this date`,
    );
  }
  return rows;
}

const READ_ATTEMPTS = 3;

/**
 * A commit can land while a reader is between the manifest and the files, and then remove the files the
 * reader was about to open. When a read fails and the manifest has changed meanwhile, the reader simply
 * reads the new partition (no wait needed: the new manifest is committed before old files go).
 */
async function consistentRead<T>(dir: string, read: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const before = await manifestText(dir);
    try {
      return await read();
    } catch (e) {
      if (attempt >= READ_ATTEMPTS || (await manifestText(dir)) === before) throw e;
    }
  }
}

async function manifestText(dir: string): Promise<string | null> {
  try {
    return await readFile(manifestPath(dir), 'utf8');
  } catch {
    return null;
  }
}
