/**
 * The preprocess step, start to end. The input is read twice (CSV once, into a DuckDB table):
 *   windows        plan the point-in-time windows (./windows.ts), find the files, prune Hive partitions
 *   validate       one GROUPING SETS pass (./prepass.ts): rows by reject reason, vocabulary and product counts;
 *                  fail early past the threshold; at the end, the quarantine and the check with duplicates
 *   vocabularies   items/categories of the training window and products, or the frozen ones given
 *   sequences      one sorted pass over the valid events → a row per customer and set (./sequences.ts)
 *   shards         Arrow IPC stream files per set and shard, counts files (./sets.ts)
 */
import path from 'node:path';
import { DAY_MS } from '../../jobs/job.js';
import { InputError } from '../../core/errors.js';
import { makeDir } from '../../core/file-modes.js';
import { TOKEN_COLUMNS, type TokenColumn } from '../../proto/shard-batch.js';
import { openDuckDB, type DuckDB } from '../duckdb/index.js';
import { jobAggregateLayout } from '../features/index.js';
import { DuplicateKeyWriter, duplicatesSql } from './duplicates.js';
import { eventsSql } from './events.js';
import { openInput, firstLine } from './input.js';
import { PREPASS, runPrepass } from './prepass.js';
import { buildSequences, streamSql, type DuplicateEvent } from './sequences.js';
import { OpenSet } from './sets.js';
import { checkThreshold, countMalformed, countReasons, rejectedTotal, writeQuarantine } from './validate.js';
import { checkFreshness } from './freshness.js';
import { buildProducts, buildVocabulary, FIRST_TOKEN_ID, hashesOf, tokenIds, UNKNOWN_ID } from './vocab.js';
import { planWindows, type SetName } from './windows.js';
import type { PreprocessOptions, PreprocessResult } from './types.js';

const EVENTS = 'events';

export async function preprocess(o: PreprocessOptions): Promise<PreprocessResult> {
  const { job } = o;
  const timings: Record<string, number> = { validate: 0, windows: 0, vocabularies: 0, sequences: 0, shards: 0 };
  const clock = (step: string, since: number) => (timings[step] = (timings[step] ?? 0) + (performance.now() - since));
  const progress = o.onProgress ?? (() => undefined);
  const setNames: SetName[] = o.sets ?? ['train', 'score'];

  let t = performance.now();
  progress('windows', 0, null);
  const plan = planWindows(job, o.scoreDate, setNames, !o.vocabulary || !o.products);
  await makeDir(o.runDir);
  await using db = await openDuckDB({
    memoryLimit: job.resources.memoryLimit,
    threads: job.resources.threads,
    tempDirectory: path.join(o.runDir, 'duckdb-tmp'),
    timeZone: job.input.timeZone,
  });
  const input = await openInput(db, job, plan.fromMs, plan.toMs);
  clock('windows', t);

  // validate
  t = performance.now();
  progress('validate', 0, null);
  const events = eventsSql(job, input);
  const withRaw = eventsSql(job, input, { withRaw: true }).select;
  await readInput(db, input.format === 'csv' ? `CREATE TABLE ${EVENTS} AS ${events.select}` : `CREATE VIEW ${EVENTS} AS ${events.select}`, job.input.path);
  const buildVocab = !o.vocabulary;
  const findProducts = !o.products && job.products.topCategories > 0;
  const checkCategories = !o.products && job.products.categories.length > 0;
  const sets = await readInput(
    db,
    () =>
      runPrepass(db, job, {
        events: EVENTS,
        fromMs: plan.fromMs,
        toMs: plan.toMs,
        vocabulary: buildVocab ? { fromMs: plan.vocabFromMs, toMs: plan.vocabToMs } : null,
        productsBeforeMs: findProducts ? plan.productsToMs : null,
        productsFromMs: plan.train.featureFromMs,
        purchasedCategories: checkCategories,
        scoreDateMs: plan.score.asOfMs,
      }),
    job.input.path,
  );
  const counts = await countReasons(db, PREPASS, sets.reasons);
  counts.rejected.malformed_line = await countMalformed(db, input);
  counts.rowsRead += counts.rejected.malformed_line;
  if (counts.rowsRead === 0) throw new InputError(`the input ${job.input.path} has no rows${input.hive ? ' in the partitions this date needs' : ''}: check input.path in ${job.file}`);
  const quarantinePath = path.join(o.runDir, 'quarantine.parquet');
  const rejectedBeforeDuplicates = rejectedTotal(counts.rejected);
  if (rejectedBeforeDuplicates / counts.rowsRead > job.validation.maxRejectedShare) {
    // Fail before the heavy work: duplicates can only add to the share.
    const q = await writeQuarantine(db, input, quarantinePath, { eventsWithRaw: withRaw, duplicates: null }, true);
    checkThreshold(job, counts, q);
  }
  const freshness = checkFreshness(job, o.scoreDate, plan.score.asOfMs, counts, o.allowStale ?? false);
  clock('validate', t);

  // vocabularies and products
  t = performance.now();
  progress('vocabularies', 0, null);
  const prepassCounts = { table: PREPASS, ...sets };
  const vocabulary = o.vocabulary ?? (await buildVocabulary(db, job, prepassCounts));
  const products = o.products ?? (await buildProducts(db, job, prepassCounts));
  if (job.columns.item && !vocabulary.item) throw new InputError(`the given vocabulary has no item tokens but ${job.file} maps columns.item: use the vocabulary saved with the model`);
  if (job.columns.category && !vocabulary.category) throw new InputError(`the given vocabulary has no category tokens but ${job.file} maps columns.category: use the vocabulary saved with the model`);
  const itemIds = job.columns.item ? await tokenIds(db, vocabulary.item!, events.itemType!) : null;
  const categoryIds = job.columns.category ? await tokenIds(db, vocabulary.category!, events.categoryType!) : null;
  const eventIds = Int32Array.from(job.events.types, (type) => {
    const i = vocabulary.event.indexOf(type);
    return i < 0 ? UNKNOWN_ID : FIRST_TOKEN_ID + i;
  });
  const categoryHashes = events.categoryType ? await hashesOf(db, products.map((p) => p.category ?? ''), events.categoryType) : [];
  const productCategories = products.map((p, i): [number, number] | null => (p.category === null ? null : (categoryHashes[i] ?? [0, 0])));
  clock('vocabularies', t);

  // sequences and shards
  const tokenColumns = TOKEN_COLUMNS.filter((c): c is TokenColumn => c === 'event' || (c === 'item' ? !!job.columns.item : !!job.columns.category));
  const aggregates = jobAggregateLayout(job);
  const labelledScore = counts.maxValidMs !== null && counts.maxValidMs >= plan.score.labelToMs - DAY_MS;
  const result: PreprocessResult = {
    stats: { rowsRead: counts.rowsRead, rowsAccepted: 0, rejected: counts.rejected, outsideWindow: counts.outsideWindow, quarantineFile: null, inputFiles: input.files.length, timings, freshness },
    vocabulary,
    products,
    featuresFiles: {},
    aggregateFeatures: aggregates.names,
  };
  const open: OpenSet[] = [];
  let duplicates: DuplicateKeyWriter | null = null;
  try {
    for (const window of plan.sets) {
      const labelled = window.name === 'train' || labelledScore;
      const snapshots = window.name === 'train' ? plan.trainSnapshots : [window];
      open.push(await OpenSet.open({ db, job, window, snapshots, labelled, products, aggregates, tokenColumns, customerType: events.customerType, runDir: o.runDir }));
    }
    t = performance.now();
    const windowEvents = counts.rowsRead - rejectedBeforeDuplicates - counts.outsideWindow;
    progress('sequences', 0, windowEvents);
    const found: DuplicateEvent[] = [];
    const totals = await readInput(
      db,
      () =>
        buildSequences(db, {
          job,
          sql: streamSql(EVENTS, events.customerType, events.numericCount, plan.fromMs, plan.toMs, counts.minValidMs !== null && counts.minValidMs < plan.fromMs),
          customerType: events.customerType,
          numericCount: events.numericCount,
          sets: open.map((x) => x.sink),
          itemIds,
          categoryIds,
          eventIds,
          productCategories,
          aggregates,
          onDuplicate: (d) => found.push(d),
          afterChunk: async (done) => {
            for (const x of open) await x.writeBatches();
            if (found.length > 0) {
              duplicates ??= await DuplicateKeyWriter.create(db);
              for (const d of found.splice(0)) duplicates.add(d);
              duplicates.flush();
            }
            progress('sequences', done, windowEvents);
          },
        }),
      job.input.path,
    );
    const writeMsOf = () => open.reduce((ms, x) => ms + x.writeMs, 0);
    timings.sequences = performance.now() - t - writeMsOf();
    if (totals.events !== windowEvents) {
      // Counted once, streamed once: a difference means the files changed between the two reads.
      throw new InputError(`the input ${job.input.path} changed while it was read (${windowEvents} events counted, ${totals.events} streamed): rerun preprocess`);
    }

    progress('shards', 0, open.length);
    for (const [i, x] of open.entries()) {
      const { set, featuresFile } = await x.finish();
      result[set.name] = set;
      result.featuresFiles[set.name] = featuresFile;
      progress('shards', i + 1, open.length);
    }
    timings.shards = writeMsOf();

    // The quarantine and the final threshold check, duplicates included.
    t = performance.now();
    counts.rejected.duplicate = totals.duplicates;
    const rejected = rejectedTotal(counts.rejected);
    result.stats.rowsAccepted = counts.rowsRead - rejected;
    const dups = duplicates as DuplicateKeyWriter | null;
    dups?.close();
    duplicates = null;
    result.stats.quarantineFile = await writeQuarantine(
      db,
      input,
      quarantinePath,
      { eventsWithRaw: withRaw, duplicates: dups ? duplicatesSql(job, input, withRaw) : null },
      rejected > 0,
    );
    checkThreshold(job, counts, result.stats.quarantineFile);
    clock('validate', t);
  } finally {
    for (const x of open) await x.abort();
    (duplicates as DuplicateKeyWriter | null)?.close();
  }
  return result;
}

/** Runs a statement or query that reads the input; DuckDB's read errors become InputError naming the input. */
// 'Invalid Error' is what DuckDB raises for a corrupt Parquet footer or page (TProtocolException; test/fuzz-intake.test.ts).
async function readInput<T>(db: DuckDB, work: string | (() => Promise<T>), inputPath: string): Promise<T> {
  try {
    return typeof work === 'string' ? ((await db.run(work)) as T) : await work();
  } catch (e) {
    if (e instanceof InputError || !(e instanceof Error) || !/IO Error|Invalid Input Error|Conversion Error|Parser Error|Invalid Error/.test(e.message)) throw e;
    throw new InputError(`cannot read input ${inputPath}: ${firstLine(e)}`, { cause: e });
  }
}
