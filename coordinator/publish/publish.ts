/**
 * Exactly-once prediction tables that glob readers see whole too. Per partition (account/date/product):
 *
 *   1. rows → a temporary file, fsynced, renamed to part-<sha256 prefix>.parquet   in a staging folder
 *   2. the manifest → a temporary file, fsynced, renamed to _manifest.json         in the staging folder
 *   3. the committed folder (if any) is renamed aside, into the staging area
 *   4. the staging folder is renamed to product=<p>, both parents fsynced          ← the commit point
 *   5. the old folder is deleted
 *
 * The staging area (layout.ts stagingDir) is outside predictions/, so nothing uncommitted is ever under
 * the table's folder: a reader that globs the Parquet files (DuckDB, Spark, an external table) and a
 * reader that goes through the manifests see exactly the same files at every instant. A crash before 3
 * leaves the old partition; after 4, the new one; between 3 and 4 (two renames, microseconds apart) the
 * product is absent for both kinds of reader until the next publish, and the date is not committed
 * (date-commit.ts) in any case. Each partition commits on its own: a crash between two products leaves
 * the first new and the second old, each whole (their manifests' run ids say which).
 *
 * One publisher per account and date at a time (the run lock): a publish clears the date's staging area.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { PublishError } from '../../core/errors.js';
import type { EnsembleSpec } from '../ensemble/index.js';
import { commitRename, fsyncDir, writeTempFile } from '../../core/durable-fs.js';
import { currentFileModes, makeDir, type FileModes } from '../../core/file-modes.js';
import { loadScoreTable, scoreColumn, withDuckDB, type DuckDBSettings } from './duckdb.js';
import { checkActions, resolveActions, type ActionRule } from './actions.js';
import { manifestPath, readManifest, schemaRecord, type PartitionManifest, type PublishedChampion } from './manifest.js';
import { dateDir, partitionDir, productFolder, productFolders, safeComponent, safeDate, stagingDir } from './layout.js';
import type { ParquetCompression } from './schema.js';
import { writePartitionFile, type ScoreSource } from './write-partition.js';

/** Where publishPredictions can be told to stop dead, in the order it passes them. */
export const CRASH_POINTS = ['before-data', 'after-temp-data', 'after-data', 'before-manifest', 'after-staged', 'after-aside', 'after-manifest', 'before-remove-stale'] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

export interface ProductPredictions {
  product: string;
  /** Every customer known as of the date, each exactly once. */
  customerIds: string[];
  /** Probabilities in [0, 1], same order as customerIds. */
  scores: Float32Array;
  /** The versions of the models behind the scores; joined with '+' in the model_version column. */
  modelVersions: string[];
  /** How the scores were combined, recorded in the manifest. @default null */
  ensemble?: EnsembleSpec;
  /** Which candidate was published and why, and its calibration, recorded in the manifest. @default null */
  champion?: PublishedChampion;
}

export interface PublishOptions extends DuckDBSettings {
  outDir: string;
  account: string;
  /** YYYY-MM-DD */
  date: string;
  runId: string;
  /** ISO 8601 instant written in every row's scored_at (an input, so that reruns give the same bytes). */
  scoredAt: string;
  /**
   * By threshold (sorted highest first here; a score below all of them gets action 'none') or by share of
   * each product's customers in rank order (the first rule takes the top share, and so on; the rest get 'none').
   */
  actions: ActionRule[];
  inputWindow: { from: string; to: string };
  products: ProductPredictions[];
  /** The manifests' createdAt. @default the current time */
  createdAt?: string;
  /** Parquet compression of the data files: zstd is smaller, snappy faster to write. @default 'zstd' */
  compression?: ParquetCompression;
  /**
   * Permissions of the table's files and of the folders publish creates for them (a warehouse loader's
   * group may be given read access here: the job's output.publishedMode). @default the modes in force (private)
   */
  modes?: FileModes;
  /** Remove the date's partitions of products this publish does not include, so that a rerun replaces the date whole. @default true */
  replaceOtherProducts?: boolean;
  /**
   * Test hook: throw at a named point to simulate a crash, leaving the files as a killed process would.
   * `'<point>'` stops at the first product to reach it, `'<point>@<product>'` at that product.
   */
  crashAt?: string;
  /** How the crashAt hook stops: throw a PublishError, or SIGKILL the process (end-to-end tests). @default 'throw' */
  crashBy?: 'throw' | 'kill';
}

export interface PublishedPartition {
  product: string;
  dir: string;
  manifest: PartitionManifest;
}

export interface PublishResult {
  partitions: PublishedPartition[];
  /** Products of an earlier run of this date that this run does not have, removed. */
  removedProducts: string[];
}

export async function publishPredictions(o: PublishOptions): Promise<PublishResult> {
  const checked = checkOptions(o);
  const crash = crashHook(o.crashAt, o.crashBy ?? 'throw');
  const createdAt = o.createdAt ?? new Date().toISOString();
  const partitions: PublishedPartition[] = [];
  const modes = o.modes ?? currentFileModes();

  const staging = stagingDir(o.outDir, o.account, o.date);
  const date = dateDir(o.outDir, o.account, o.date);
  await rm(staging, { recursive: true, force: true }); // what a killed publish of this date left
  await makeDir(staging); // private: only the partitions staged inside it become the table
  await makeDir(date, modes);
  await fsyncDir(path.dirname(date));

  await withDuckDB(o, async (connection) => {
    const sources = await loadProducts(connection, o.products);
    for (const p of o.products) {
      const dir = partitionDir(o.outDir, o.account, o.date, p.product);
      const token = randomBytes(6).toString('hex');
      const staged = path.join(staging, `${productFolder(p.product)}-${token}`);
      await makeDir(staged, modes);
      crash('before-data', p.product);
      const actions = resolveActions(checked.actions, p.customerIds.length);
      const written = await writePartitionFile(
        connection,
        sources.get(p.product)!,
        staged,
        {
          product: p.product,
          modelVersion: p.modelVersions.join('+'),
          runId: o.runId,
          scoredAt: checked.scoredAt,
          actions,
          compression: o.compression ?? 'zstd',
        },
        p.customerIds.length,
        () => crash('after-temp-data', p.product),
        modes,
      );
      crash('after-data', p.product);

      const { actionCounts, ...file } = written;
      const manifest: PartitionManifest = {
        formatVersion: 1,
        account: o.account,
        date: o.date,
        product: p.product,
        runId: o.runId,
        rowCount: p.customerIds.length,
        files: [file],
        modelVersions: [...p.modelVersions],
        ensemble: p.ensemble ?? null,
        champion: p.champion ?? null,
        inputWindow: { from: o.inputWindow.from, to: o.inputWindow.to },
        actions,
        actionCounts,
        scoredAt: checked.scoredAt,
        createdAt,
        schema: schemaRecord(),
      };
      const tmp = await writeTempFile(manifestPath(staged), `${JSON.stringify(manifest, null, 2)}\n`, modes);
      crash('before-manifest', p.product);
      await commitRename(tmp, manifestPath(staged));
      crash('after-staged', p.product);
      const aside = await moveAside(dir, path.join(staging, `replaced-${productFolder(p.product)}-${token}`));
      crash('after-aside', p.product);
      await rename(staged, dir);
      await fsyncDir(date);
      await fsyncDir(staging);
      crash('after-manifest', p.product);
      if (aside) await rm(aside, { recursive: true, force: true });
      partitions.push({ product: p.product, dir, manifest });
    }
  });

  const removedProducts: string[] = [];
  if (o.replaceOtherProducts ?? true) {
    crash('before-remove-stale', '');
    const keep = new Set(o.products.map((p) => productFolder(p.product)));
    const parent = dateDir(o.outDir, o.account, o.date);
    for (const folder of await productFolders(parent)) {
      if (keep.has(folder)) continue;
      const dir = path.join(parent, folder);
      const product = (await readManifest(dir).catch(() => null))?.product ?? folder;
      await removePartition(dir, staging);
      removedProducts.push(product);
    }
  }
  await rm(staging, { recursive: true, force: true });
  return { partitions, removedProducts };
}

/** Takes a partition out of the table in one rename (readers of either kind see it whole or not at all), then deletes it. */
async function removePartition(dir: string, staging: string): Promise<void> {
  const aside = await moveAside(dir, path.join(staging, `removed-${path.basename(dir)}-${randomBytes(6).toString('hex')}`));
  if (aside) await rm(aside, { recursive: true, force: true });
}

/** Renames `dir` to `aside` and syncs both parents; null when there was no `dir`. */
async function moveAside(dir: string, aside: string): Promise<string | null> {
  try {
    await rename(dir, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  await fsyncDir(path.dirname(dir));
  await fsyncDir(path.dirname(aside));
  return aside;
}

/**
 * Loads every product's scores into DuckDB, one table per distinct customer list (products scored on
 * the same list share it), and refuses before anything is written a list that names a customer twice
 * or products that do not score the same customers (each must score every customer known as of the date).
 */
async function loadProducts(connection: DuckDBConnection, products: ProductPredictions[]): Promise<Map<string, ScoreSource>> {
  const byList = new Map<string[], ProductPredictions[]>();
  for (const p of products) byList.set(p.customerIds, [...(byList.get(p.customerIds) ?? []), p]);
  const sources = new Map<string, ScoreSource>();
  const tables: { table: string; product: string; rows: number }[] = [];
  for (const [customerIds, sharing] of byList) {
    const table = `scores_${tables.length}`;
    await loadScoreTable(connection, table, customerIds, sharing.map((p) => p.scores));
    const dup = await connection.runAndReadAll(`SELECT customer_id FROM ${table} GROUP BY customer_id HAVING count(*) > 1 LIMIT 1`);
    if (dup.currentRowCount > 0) {
      throw new PublishError(
        `product "${sharing[0]!.product}": customer "${String(dup.getRows()[0]![0])}" has more than one score; every customer must appear exactly once`,
      );
    }
    sharing.forEach((p, j) => sources.set(p.product, { table, column: scoreColumn(j) }));
    tables.push({ table, product: sharing[0]!.product, rows: customerIds.length });
  }
  const [first, ...others] = tables;
  for (const other of others) {
    // Same size and no duplicates on either side: one empty difference means the same set.
    const missing =
      other.rows === first!.rows
        ? await connection.runAndReadAll(`SELECT customer_id FROM ${first!.table} EXCEPT SELECT customer_id FROM ${other.table} LIMIT 1`)
        : null;
    if (missing === null || missing.currentRowCount > 0) {
      const detail = missing ? `customer "${String(missing.getRows()[0]![0])}" is missing from the second` : `${first!.rows} and ${other.rows} customers`;
      throw new PublishError(
        `products "${first!.product}" and "${other.product}" score different customers (${detail}); every product must score every customer known as of the date`,
      );
    }
  }
  return sources;
}

interface CheckedOptions {
  scoredAt: string;
  actions: ActionRule[];
}

function checkOptions(o: PublishOptions): CheckedOptions {
  safeComponent('account', o.account);
  safeDate(o.date);
  if (typeof o.runId !== 'string' || o.runId.length === 0) throw new PublishError('runId must be a non-empty string');
  const scoredAtMs = Date.parse(o.scoredAt);
  if (Number.isNaN(scoredAtMs)) throw new PublishError(`scoredAt "${o.scoredAt}" is not an ISO 8601 instant, e.g. 2017-12-03T02:00:00Z`);

  const actions = checkActions(o.actions);
  const folders = new Set<string>();
  for (const p of o.products) {
    if (typeof p.product !== 'string') throw new PublishError(`a product name must be a string, got ${typeof p.product}`);
    // Distinct names have distinct folders (core/path-component.ts), so a repeated folder is a repeated name.
    if (folders.has(productFolder(p.product))) throw new PublishError(`product "${p.product}" is listed twice`);
    folders.add(productFolder(p.product));
    if (p.scores.length !== p.customerIds.length) {
      throw new PublishError(`product "${p.product}" has ${p.scores.length} scores for ${p.customerIds.length} customers`);
    }
    for (let i = 0; i < p.scores.length; i++) {
      const s = p.scores[i]!;
      if (!(s >= 0 && s <= 1)) {
        throw new PublishError(`product "${p.product}": customer "${p.customerIds[i]}" has score ${s}; scores must be probabilities in [0, 1]`);
      }
    }
  }
  return {
    scoredAt: new Date(scoredAtMs).toISOString(),
    actions,
  };
}

function crashHook(crashAt: string | undefined, by: 'throw' | 'kill'): (point: CrashPoint, product: string) => void {
  if (crashAt === undefined) return () => {};
  const [point, product] = crashAt.split('@') as [string, string | undefined];
  if (!(CRASH_POINTS as readonly string[]).includes(point)) {
    throw new PublishError(`crashAt "${crashAt}": the crash points are ${CRASH_POINTS.join(', ')} (optionally @<product>)`);
  }
  return (at, current) => {
    if (at === point && (product === undefined || product === current)) {
      if (by === 'kill') process.kill(process.pid, 'SIGKILL');
      throw new PublishError(`simulated crash at ${at}${current ? ` (product ${current})` : ''}: the crashAt test hook`);
    }
  };
}
