/**
 * The preprocess step, start to end:
 *   validate       read the input once per pass (CSV is parsed once into a DuckDB table), count rows by reject reason
 *   windows        plan the point-in-time windows and prune Hive partitions to them
 *   vocabularies   items/categories of the training window, products (or the frozen ones given)
 *   sequences      one sorted pass over the valid events → per customer rows (./sequences.ts)
 *   shards         Arrow IPC stream files per set and shard, counts files, quarantine, the threshold check
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { DuckDBAppender } from '@duckdb/node-api';
import type { RecordBatch } from 'apache-arrow';
import { DAY_MS } from '../../jobs/job.js';
import { InputError } from '../../core/errors.js';
import { shardSchema, TOKEN_COLUMNS, type TokenColumn } from '../../proto/shard-batch.js';
import { openDuckDB, type DuckDB } from '../duckdb/index.js';
import { CountsWriter } from './counts.js';
import { eventsSql } from './events.js';
import { openInput, firstLine } from './input.js';
import { PREPASS, runPrepass } from './prepass.js';
import { buildSequences, streamSql, type DuplicateEvent, type SetSink } from './sequences.js';
import { ShardBuilder, ShardFileWriter } from './shards.js';
import { checkThreshold, countReasons, duplicatesSql, rejectedTotal, writeQuarantine } from './validate.js';
import { buildProducts, buildVocabulary, FIRST_TOKEN_ID, hashesOf, tokenIds, UNKNOWN_ID } from './vocab.js';
import { planWindows, type SetName } from './windows.js';
import type { PreprocessOptions, PreprocessResult, ShardSet } from './types.js';

const EVENTS = 'events';
const DUPLICATE_KEYS = 'duplicate_keys';

export async function preprocess(o: PreprocessOptions): Promise<PreprocessResult> {
  const { job } = o;
  const timings: Record<string, number> = { validate: 0, windows: 0, vocabularies: 0, sequences: 0, shards: 0 };
  const clock = (step: string, since: number) => (timings[step] = (timings[step] ?? 0) + (performance.now() - since));
  const progress = o.onProgress ?? (() => undefined);
  const setNames: SetName[] = o.sets ?? ['train', 'score'];

  let t = performance.now();
  progress('windows', 0, null);
  const plan = planWindows(job, o.scoreDate, setNames, !o.vocabulary || !o.products);
  await mkdir(o.runDir, { recursive: true });
  await using db = await openDuckDB({
    memoryLimit: job.resources.memoryLimit,
    threads: job.resources.threads,
    tempDirectory: path.join(o.runDir, 'duckdb-tmp'),
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
  const sets = await readInput(
    db,
    () =>
      runPrepass(db, job, {
        events: EVENTS,
        fromMs: plan.fromMs,
        toMs: plan.toMs,
        vocabulary: buildVocab ? { fromMs: plan.vocabFromMs, toMs: plan.vocabToMs } : null,
        productsBeforeMs: findProducts ? plan.productsToMs : null,
      }),
    job.input.path,
  );
  const counts = await countReasons(db, PREPASS, sets.reasons);
  if (counts.rowsRead === 0) throw new InputError(`the input ${job.input.path} has no rows${input.hive ? ' in the partitions this date needs' : ''}: check input.path in ${job.file}`);
  const quarantinePath = path.join(o.runDir, 'quarantine.parquet');
  const rejectedBeforeDuplicates = rejectedTotal(counts.rejected);
  if (rejectedBeforeDuplicates / counts.rowsRead > job.validation.maxRejectedShare) {
    // Fail before the heavy work: duplicates can only add to the share.
    const q = await writeQuarantine(db, job, quarantinePath, { eventsWithRaw: withRaw, duplicates: null }, true);
    checkThreshold(job, counts, q);
  }
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
  const labelledScore = counts.maxValidMs !== null && counts.maxValidMs >= plan.score.labelToMs - DAY_MS;
  const sinks: (SetSink & { writers: ShardFileWriter[]; dir: string; countsFile: string })[] = [];
  const pending: { writer: ShardFileWriter; batch: RecordBatch }[] = [];
  let writeMs = 0;
  let duplicateKeys: DuplicateKeyWriter | null = null;
  const result: PreprocessResult = {
    stats: { rowsRead: counts.rowsRead, rowsAccepted: 0, rejected: counts.rejected, outsideWindow: counts.outsideWindow, quarantineFile: null, inputFiles: input.files.length, timings },
    vocabulary,
    products,
    countsFiles: {},
  };
  try {
    for (const w of plan.sets) {
      const labelled = w.name === 'train' || labelledScore;
      const schema = shardSchema({
        tokenColumns,
        numericColumns: job.columns.numeric.map((n) => n.column),
        products: products.map((p) => p.name),
        labelled,
        asOf: w.asOf,
        maxLength: job.sequence.maxLength,
      });
      const dir = path.join(o.runDir, w.name);
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      const layout = { tokenColumns, numericCount: job.columns.numeric.length, productCount: products.length, labelled, batchRows: job.shards.batchRows };
      const builders = Array.from({ length: job.shards.count }, () => new ShardBuilder(schema, layout));
      const writers: ShardFileWriter[] = [];
      for (let s = 0; s < job.shards.count; s++) writers.push(await ShardFileWriter.create(path.join(dir, `shard-${s}.arrow`), schema));
      const sink = {
        window: w,
        labelled,
        negativeRate: w.name === 'train' ? job.sampling.negativeRate : 1,
        split: w.name === 'train',
        builders,
        counts: await CountsWriter.create(db, `counts_${w.name}`, events.customerType, job.events.types),
        onFull: (shard: number) => pending.push({ writer: writers[shard]!, batch: builders[shard]!.take() }),
        customers: 0,
        noHistory: 0,
        positives: new Float64Array(products.length),
        writers,
        dir,
        countsFile: path.join(dir, 'counts.parquet'),
      };
      sinks.push(sink);
    }
    const writePending = async () => {
      const t0 = performance.now();
      for (const p of pending.splice(0)) await p.writer.write(p.batch);
      writeMs += performance.now() - t0;
    };

    t = performance.now();
    const windowEvents = counts.rowsRead - rejectedBeforeDuplicates - counts.outsideWindow;
    progress('sequences', 0, windowEvents);
    const withMarkers = counts.minValidMs !== null && counts.minValidMs < plan.fromMs;
    const totals = await readInput(
      db,
      () =>
        buildSequences(db, {
          job,
          sql: streamSql(EVENTS, events.customerType, events.numericCount, plan.fromMs, plan.toMs, withMarkers),
          customerType: events.customerType,
          numericCount: events.numericCount,
          sets: sinks,
          itemIds,
          categoryIds,
          eventIds,
          productCategories,
          onDuplicate: (d) => {
            duplicateKeys ??= new DuplicateKeyWriter(db);
            duplicateKeys.add(d);
          },
          afterChunk: async (done) => {
            await writePending();
            await (duplicateKeys as DuplicateKeyWriter | null)?.flush();
            progress('sequences', done, windowEvents);
          },
        }),
      job.input.path,
    );
    const loopMs = performance.now() - t;
    if (totals.events !== windowEvents) {
      // Counted once, streamed once: a difference means the files changed between the two reads.
      throw new InputError(`the input ${job.input.path} changed while it was read (${windowEvents} events counted, ${totals.events} streamed): rerun preprocess`);
    }

    t = performance.now();
    progress('shards', 0, sinks.length);
    for (const sink of sinks) {
      sink.builders.forEach((b, s) => {
        if (b.rows > 0) pending.push({ writer: sink.writers[s]!, batch: b.take() });
      });
      await writePending();
      const shards = [];
      for (const [s, writer] of sink.writers.entries()) shards.push({ id: `${sink.window.name}-${s}`, file: writer.file, rows: writer.rows, bytes: await writer.close() });
      sink.writers.length = 0;
      await sink.counts.finish(sink.countsFile, sink.window.asOfMs);
      const set: ShardSet = {
        name: sink.window.name,
        asOf: sink.window.asOf,
        labelled: sink.labelled,
        customers: sink.customers,
        noHistory: sink.noHistory,
        positives: Object.fromEntries(products.map((p, i) => [p.name, sink.positives[i]!])),
        shards,
      };
      result[sink.window.name] = set;
      result.countsFiles[sink.window.name] = sink.countsFile;
      progress('shards', sinks.indexOf(sink) + 1, sinks.length);
    }
    timings.sequences = loopMs - writeMs;
    timings.shards = writeMs + (performance.now() - t);

    // The quarantine and the final threshold check, duplicates included.
    t = performance.now();
    counts.rejected.duplicate = totals.duplicates;
    const rejected = rejectedTotal(counts.rejected);
    result.stats.rowsAccepted = counts.rowsRead - rejected;
    const dups = duplicateKeys as DuplicateKeyWriter | null;
    if (dups) {
      await dups.flush();
      dups.close();
    }
    result.stats.quarantineFile = await writeQuarantine(
      db,
      job,
      quarantinePath,
      { eventsWithRaw: withRaw, duplicates: dups ? duplicatesSql(job, withRaw, DUPLICATE_KEYS) : null },
      rejected > 0,
    );
    checkThreshold(job, counts, result.stats.quarantineFile);
    clock('validate', t);
  } finally {
    for (const sink of sinks) {
      for (const w of sink.writers) await w.abort();
      sink.counts.close();
    }
    (duplicateKeys as DuplicateKeyWriter | null)?.close();
  }
  return result;
}

/** Runs a statement or query that reads the input; DuckDB's read errors become InputError naming the input. */
async function readInput<T>(db: DuckDB, work: string | (() => Promise<T>), inputPath: string): Promise<T> {
  try {
    return typeof work === 'string' ? ((await db.run(work)) as T) : await work();
  } catch (e) {
    if (e instanceof InputError || !(e instanceof Error) || !/IO Error|Invalid Input Error|Conversion Error|Parser Error/.test(e.message)) throw e;
    throw new InputError(`cannot read input ${inputPath}: ${firstLine(e)}`, { cause: e });
  }
}

/** Keys of dropped duplicates, appended row by row to a DuckDB table for the quarantine query (they are rare). */
class DuplicateKeyWriter {
  private appender: DuckDBAppender | null = null;
  private ready: Promise<void>;
  private queue: DuplicateEvent[] = [];

  constructor(private readonly db: DuckDB) {
    this.ready = db.run(`CREATE OR REPLACE TABLE ${DUPLICATE_KEYS} (customer VARCHAR, ts BIGINT, e UTINYINT, hi UBIGINT, hc UBIGINT)`).then(async () => {
      this.appender = await db.connection.createAppender(DUPLICATE_KEYS);
    });
  }

  add(d: DuplicateEvent): void {
    this.queue.push(d);
  }

  /** Appends everything added so far (call before reading the table). */
  async flush(): Promise<void> {
    await this.ready;
    const a = this.appender!;
    for (const d of this.queue.splice(0)) {
      a.appendVarchar(d.customer);
      a.appendBigInt(BigInt(d.ts));
      a.appendUTinyInt(d.e);
      a.appendUBigInt(unsigned64(d.itemHash));
      a.appendUBigInt(unsigned64(d.categoryHash));
      a.endRow();
    }
    a.flushSync();
  }

  close(): void {
    this.appender?.closeSync();
    this.appender = null;
  }
}

function unsigned64([lo, hi]: [number, number]): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}


