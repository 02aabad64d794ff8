/**
 * One shard set being written (train or score): its Arrow schema, a builder and a file per shard, the
 * aggregate features file, and the batches waiting to be written. Full batches are taken from a builder at once (so it
 * never holds more than batchRows rows) and written between DuckDB chunks.
 */
import { rm } from 'node:fs/promises';
import { makeDir } from '../../core/file-modes.js';
import path from 'node:path';
import type { RecordBatch } from 'apache-arrow';
import type { Job } from '../../jobs/job.js';
import { shardSchema, type TokenColumn } from '../../proto/shard-batch.js';
import type { DuckDB } from '../duckdb/index.js';
import type { AggregateLayout } from '../features/index.js';
import { FeaturesWriter } from './features-file.js';
import type { SetSink } from './sequences.js';
import { ShardBuilder, ShardFileWriter } from './shards.js';
import type { ShardSet } from './types.js';
import type { Product } from './vocab.js';
import type { SetWindow } from './windows.js';

export interface OpenSetOptions {
  db: DuckDB;
  job: Job;
  window: SetWindow;
  /** The snapshots the set stacks, latest (= window) first. @default [window] */
  snapshots?: SetWindow[];
  labelled: boolean;
  products: Product[];
  aggregates: AggregateLayout;
  tokenColumns: TokenColumn[];
  customerType: 'BIGINT' | 'VARCHAR';
  runDir: string;
}

export class OpenSet {
  readonly sink: SetSink;
  private readonly pending: { writer: ShardFileWriter; taken: { batch: RecordBatch; release: () => void } }[] = [];
  /** Time spent writing batches (ms). */
  writeMs = 0;

  private constructor(
    private readonly o: OpenSetOptions,
    private readonly writers: ShardFileWriter[],
    builders: ShardBuilder[],
    features: FeaturesWriter,
    private readonly featuresFile: string,
  ) {
    const w = o.window;
    const train = w.name === 'train';
    this.sink = {
      window: w,
      snapshots: o.snapshots ?? [w],
      labelled: o.labelled,
      negativeRate: train ? o.job.sampling.negativeRate : 1,
      split: train,
      builders,
      features,
      onFull: (shard) => this.pending.push({ writer: writers[shard]!, taken: builders[shard]!.take() }),
      customers: 0,
      noHistory: 0,
      positives: new Float64Array(o.products.length),
    };
  }

  /** Creates `<runDir>/<set>/` afresh with an empty shard file per shard. */
  static async open(o: OpenSetOptions): Promise<OpenSet> {
    const { job } = o;
    const schema = shardSchema({
      tokenColumns: o.tokenColumns,
      numericColumns: job.columns.numeric.map((n) => n.column),
      products: o.products.map((p) => p.name),
      labelled: o.labelled,
      asOf: o.window.asOf,
      maxLength: job.sequence.maxLength,
      wideFeatures: o.aggregates.names,
    });
    const dir = path.join(o.runDir, o.window.name);
    await rm(dir, { recursive: true, force: true });
    await makeDir(dir);
    const layout = {
      tokenColumns: o.tokenColumns,
      numericCount: job.columns.numeric.length,
      productCount: o.products.length,
      wideFeatures: o.aggregates.names.length,
      labelled: o.labelled,
      batchRows: job.shards.batchRows,
    };
    const builders = Array.from({ length: job.shards.count }, () => new ShardBuilder(schema, layout));
    const writers: ShardFileWriter[] = [];
    try {
      for (let s = 0; s < job.shards.count; s++) writers.push(await ShardFileWriter.create(path.join(dir, `shard-${s}.arrow`), schema));
      const features = await FeaturesWriter.create(o.db, `features_${o.window.name}`, o.customerType, o.products.map((p) => p.name), o.aggregates.names);
      return new OpenSet(o, writers, builders, features, path.join(dir, 'features.parquet'));
    } catch (e) {
      for (const w of writers) await w.abort();
      throw e;
    }
  }

  /** Writes the batches taken so far. */
  async writeBatches(): Promise<void> {
    if (this.pending.length === 0) return;
    const t0 = performance.now();
    for (const p of this.pending.splice(0)) {
      await p.writer.write(p.taken.batch);
      p.taken.release();
    }
    this.writeMs += performance.now() - t0;
  }

  /** Writes the last partial batches, ends every shard file and writes the features file. */
  async finish(): Promise<{ set: ShardSet; featuresFile: string }> {
    const t0 = performance.now();
    this.sink.builders.forEach((b, s) => {
      if (b.rows > 0) this.pending.push({ writer: this.writers[s]!, taken: b.take() });
    });
    await this.writeBatches();
    const name = this.o.window.name;
    const shards = [];
    for (const [s, writer] of this.writers.entries()) shards.push({ id: `${name}-${s}`, file: writer.file, rows: writer.rows, bytes: await writer.close() });
    this.writers.length = 0;
    await this.sink.features.finish(this.featuresFile);
    this.writeMs += performance.now() - t0;
    const sink = this.sink;
    return {
      set: {
        name,
        asOf: this.o.window.asOf,
        labelled: sink.labelled,
        customers: sink.customers,
        noHistory: sink.noHistory,
        // Without a covered label window there are no labels to count.
        positives: sink.labelled ? Object.fromEntries(this.o.products.map((p, i) => [p.name, sink.positives[i]!])) : {},
        shards,
      },
      featuresFile: this.featuresFile,
    };
  }

  /** Releases files and the features appender after a failure (finish() not reached). */
  async abort(): Promise<void> {
    for (const w of this.writers) await w.abort();
    this.sink.features.close();
  }
}
