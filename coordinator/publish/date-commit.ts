/**
 * The date-level commit record, `<outDir>/predictions/account=<a>/date=<d>/_committed.json`: written last
 * (atomically) by a publish, after every product partition, the audiences and the CSV export; removed
 * first by the next publish of the date. A date is published exactly when its record exists, names the
 * run id the job configuration gives, and every partition manifest, audience manifest and export it
 * lists is still there as recorded. Anything less (a kill between two products, a disk full before the
 * audiences) is an unfinished date that `run` and `backfill` complete.
 */
import { createHash } from 'node:crypto';
import { readFile, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { PublishError } from '../../core/errors.js';
import { fsyncDir, writeFileDurably } from '../../core/durable-fs.js';
import { modesOf, type FileModes } from '../../core/file-modes.js';
import { dateDir, partitionDir, productFolder, productFolders } from './layout.js';
import { manifestPath, readManifest } from './manifest.js';

export const DATE_COMMIT_NAME = '_committed.json';

export interface DateCommitRecord {
  formatVersion: 1;
  account: string;
  date: string;
  runId: string;
  /** Each product's partition manifest, by path relative to the output folder, with its sha256. */
  partitions: { product: string; manifest: string; sha256: string }[];
  /** The audience manifest and the CSV export, by path relative to the output folder, with their sha256. */
  audiences: { manifest: string; sha256: string };
  exports: { file: string; sha256: string }[];
  /** When retention (`nextbuy gc`) removed the exports: the date stays committed without them. */
  exportsRemovedAt?: string;
}

export function dateCommitPath(outDir: string, account: string, date: string): string {
  return path.join(dateDir(outDir, account, date), DATE_COMMIT_NAME);
}

async function sha256Of(file: string): Promise<string | null> {
  try {
    return createHash('sha256').update(await readFile(file)).digest('hex');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Uncommits the date (first thing a publish does), so that a publish that stops half-way never looks done. */
export async function removeDateCommit(outDir: string, account: string, date: string): Promise<void> {
  const file = dateCommitPath(outDir, account, date);
  try {
    await unlink(file);
    await fsyncDir(path.dirname(file));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

export interface DateCommitInput {
  outDir: string;
  account: string;
  date: string;
  runId: string;
  products: string[];
  /** Absolute path of the audiences' manifest. */
  audienceManifest: string;
  /** Absolute paths of the exported files. */
  exports: string[];
  /** The record's permissions: the published table's. @default the run's (core/file-modes.ts) */
  modes?: FileModes;
}

/** Records what the publish wrote, by checksum; the last write of a publish. */
export async function writeDateCommit(o: DateCommitInput): Promise<DateCommitRecord> {
  const rel = (file: string) => path.relative(o.outDir, file);
  const digest = async (file: string) => {
    const sha = await sha256Of(file);
    if (sha === null) throw new PublishError(`cannot commit ${o.date}: ${file} is missing; rerun publish for this date`);
    return sha;
  };
  const record: DateCommitRecord = {
    formatVersion: 1,
    account: o.account,
    date: o.date,
    runId: o.runId,
    partitions: [],
    audiences: { manifest: rel(o.audienceManifest), sha256: await digest(o.audienceManifest) },
    exports: [],
  };
  for (const product of [...o.products].sort()) {
    const file = manifestPath(partitionDir(o.outDir, o.account, o.date, product));
    record.partitions.push({ product, manifest: rel(file), sha256: await digest(file) });
  }
  for (const file of o.exports) record.exports.push({ file: rel(file), sha256: await digest(file) });
  await writeFileDurably(dateCommitPath(o.outDir, o.account, o.date), `${JSON.stringify(record, null, 2)}\n`, o.modes);
  return record;
}

export interface DateCommitStatus {
  committed: boolean;
  /** Why not, in words (null when committed). */
  reason: string | null;
  products: string[];
}

/** Whether the date is wholly published by the run `runId`; checks every file the record lists. */
export async function dateCommitStatus(outDir: string, account: string, date: string, runId: string): Promise<DateCommitStatus> {
  const file = dateCommitPath(outDir, account, date);
  const not = (reason: string, products: string[] = []): DateCommitStatus => ({ committed: false, reason, products });
  let record: DateCommitRecord;
  try {
    record = JSON.parse(await readFile(file, 'utf8')) as DateCommitRecord;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      const folders = await productFolders(dateDir(outDir, account, date));
      return not(folders.length > 0 ? `${folders.length} product folders but no date commit record: an unfinished publish` : 'never published', folders);
    }
    return not(`${file} is unreadable (${(e as Error).message})`);
  }
  if (record.formatVersion !== 1 || !Array.isArray(record.partitions) || !Array.isArray(record.exports) || !record.audiences) {
    return not(`${file} is not a nextbuy date commit record`);
  }
  const products = record.partitions.map((p) => p.product);
  if (record.runId !== runId) return not(`committed by run ${record.runId}, not ${runId}`, products);
  const folders = await productFolders(dateDir(outDir, account, date));
  if (folders.join(',') !== products.map(productFolder).sort().join(',')) return not(`product folders ${folders.join(', ')} differ from the record's ${products.join(', ')}`, products);
  for (const p of record.partitions) {
    if ((await sha256Of(path.join(outDir, p.manifest))) !== p.sha256) return not(`${p.manifest} changed or is missing`, products);
    const manifest = await readManifest(path.dirname(path.join(outDir, p.manifest)));
    if (manifest?.runId !== runId) return not(`${p.manifest} is not from run ${runId}`, products);
  }
  const exportFiles = record.exportsRemovedAt ? [] : record.exports.map((e) => e.file);
  for (const f of [record.audiences.manifest, ...exportFiles]) {
    const expected = f === record.audiences.manifest ? record.audiences.sha256 : record.exports.find((e) => e.file === f)!.sha256;
    if ((await sha256Of(path.join(outDir, f))) !== expected) return not(`${f} changed or is missing`, products);
  }
  return { committed: true, reason: null, products };
}

/**
 * Records in the date's commit record that retention removed its exports (before it removes them), so that
 * the date still counts as committed. Keeps the record's permissions; a no-op without a record.
 */
export async function markExportsRemoved(outDir: string, account: string, date: string): Promise<void> {
  const file = dateCommitPath(outDir, account, date);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  let record: DateCommitRecord;
  try {
    record = JSON.parse(text) as DateCommitRecord;
  } catch {
    return; // Unreadable: the date does not count as committed anyway (dateCommitStatus says why).
  }
  if (record.exportsRemovedAt) return;
  record.exportsRemovedAt = new Date().toISOString();
  await writeFileDurably(file, `${JSON.stringify(record, null, 2)}\n`, modesOf((await stat(file)).mode & 0o777));
}
