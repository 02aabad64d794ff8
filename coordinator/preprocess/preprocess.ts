/**
 * The preprocess step, start to end. The input is read twice (CSV once, into a DuckDB table):
 *   windows        plan the point-in-time windows (./windows.ts), find the files, prune Hive partitions
 *   validate       one statement (./prepass.ts): rows by reject reason, vocabulary and product counts;
 *                  fail early past the threshold; at the end, the quarantine and the check with duplicates
 *   vocabularies   items/categories of the training window and products, or the frozen ones given
 *   sequences      the valid events split by shard (./shard-input.ts), then each shard read sorted and turned
 *                  into a row per customer and set (./sequences.ts), shards in parallel (./shard-pool.ts)
 *   shards         of which writing: an Arrow IPC stream file per set and shard (./sets.ts)
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { DAY_MS } from '../../jobs/job.js';
import { InputError } from '../../core/errors.js';
import { makeDir } from '../../core/file-modes.js';
import { TOKEN_COLUMNS, type TokenColumn } from '../../proto/shard-batch.js';
import { openDuckDB, sqlString, threadMemoryLimit, type DuckDB } from '../duckdb/index.js';
import { jobAggregateLayout } from '../features/index.js';
import { DuplicateKeyWriter, duplicatesSql } from './duplicates.js';
import { eventsSql } from './events.js';
import { openInput, firstLine } from './input.js';
import { PREPASS, runPrepass } from './prepass.js';
import { assembleSet, planSet, type SetPlan } from './sets.js';
import { writeShardInputs } from './shard-input.js';
import { ShardPool, sequenceThreads } from './shard-pool.js';
import { checkThreshold, countMalformed, countReasons, rejectedTotal, writeQuarantine } from './validate.js';
import { checkFreshness } from './freshness.js';
import { buildProducts, buildVocabulary, FIRST_TOKEN_ID, hashesOf, tokenIds, UNKNOWN_ID } from './vocab.js';
import { planWindows, type SetName } from './windows.js';
import type { PreprocessOptions, PreprocessResult } from './types.js';

const EVENTS = 'events';
const PARALLEL_FROM_EVENTS = 250_000;

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
    aggregateFeatures: aggregates.names,
  };
  const plans: SetPlan[] = [];
  for (const window of plan.sets) {
    const labelled = window.name === 'train' || labelledScore;
    const snapshots = window.name === 'train' ? plan.trainSnapshots : [window];
    plans.push(await planSet({ job, window, snapshots, labelled, products, aggregates, tokenColumns, runDir: o.runDir }));
  }
  const inputDir = path.join(o.runDir, 'sequence-input');
  let duplicates: DuplicateKeyWriter | null = null;
  let pool: ShardPool | null = null;
  try {
    t = performance.now();
    const windowEvents = counts.rowsRead - rejectedBeforeDuplicates - counts.outsideWindow;
    progress('sequences', 0, windowEvents);
    const shards = job.shards.count;
    const threads = windowEvents < (o.parallelFromEvents ?? PARALLEL_FROM_EVENTS) ? 1 : sequenceThreads(job.resources.threads, shards);
    result.stats.sequenceThreads = threads;
    const dupWriter = (duplicates = await DuplicateKeyWriter.create(db));
    // The threads start now: they load while DuckDB splits the events by shard.
    pool = ShardPool.start(
      {
        job,
        inputDir,
        customerType: events.customerType,
        numericCount: events.numericCount,
        sets: plans,
        itemIds: itemIds?.toData() ?? null,
        categoryIds: categoryIds?.toData() ?? null,
        eventIds,
        productCategories,
        aggregates,
      },
      shards,
      {
        threads,
        duckdb: { memoryLimit: threadMemoryLimit(job.resources.memoryLimit, threads), tempDirectory: path.join(o.runDir, 'duckdb-tmp-shards'), timeZone: job.input.timeZone },
        onProgress: (done) => progress('sequences', done, windowEvents),
        onDuplicates: (found) => {
          for (const d of found) dupWriter.add(d);
          dupWriter.flush();
        },
      },
    );
    const shardInput = { events: EVENTS, customerType: events.customerType, numericCount: events.numericCount, fromMs: plan.fromMs, toMs: plan.toMs, withMarkers: counts.minValidMs !== null && counts.minValidMs < plan.fromMs, shards };
    await readInput(db, () => writeShardInputs(db, shardInput, inputDir), job.input.path);
    const startedPool = pool;
    // While the threads work, this database only keeps what it holds (the events of a CSV input) within half
    // the limit: the threads have the other half.
    // DuckDB refuses a limit below what it cannot spill; the threads then run beside the whole limit.
    await db.run(`SET memory_limit = '${threadMemoryLimit(job.resources.memoryLimit, 1)}'`).catch(() => undefined);
    const outcomes = await readInput(db, () => startedPool.run(shards), job.input.path);
    await db.run(`SET memory_limit = ${sqlString(job.resources.memoryLimit)}`);
    const totals = { events: outcomes.reduce((n, x) => n + x.events, 0), duplicates: outcomes.reduce((n, x) => n + x.duplicates, 0) };
    const threadWriteMs = outcomes.reduce((ms, x) => ms + x.sets.reduce((m, s) => m + s.writeMs, 0), 0) / threads;
    timings.sequences = performance.now() - t - threadWriteMs;
    timings.shards = threadWriteMs;
    if (totals.events !== windowEvents) {
      // Counted once, streamed once: a difference means the files changed between the two reads.
      throw new InputError(`the input ${job.input.path} changed while it was read (${windowEvents} events counted, ${totals.events} streamed): rerun preprocess`);
    }

    progress('shards', 0, plans.length);
    for (const [i, p] of plans.entries()) {
      const set = assembleSet(p, outcomes.map((x) => x.sets[i]!));
      result[set.name] = set;
      progress('shards', i + 1, plans.length);
    }

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
      { eventsWithRaw: withRaw, duplicates: totals.duplicates > 0 ? duplicatesSql(job, input, withRaw) : null },
      rejected > 0,
    );
    checkThreshold(job, counts, result.stats.quarantineFile);
    clock('validate', t);
  } finally {
    await (pool as ShardPool | null)?.close();
    (duplicates as DuplicateKeyWriter | null)?.close();
    await rm(inputDir, { recursive: true, force: true });
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
