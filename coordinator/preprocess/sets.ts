/**
 * Shard sets being written (train or score). The coordinator plans a set (SetPlan: its folder, schema and
 * windows); each shard's thread writes its part (ShardSetOutput: the shard's Arrow file and features files);
 * the parts' outcomes add up to the set (ShardSet). Full batches are taken from the builder at once (so it
 * never holds more than batchRows rows) and written between DuckDB chunks.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { RecordBatch } from 'apache-arrow';
import { makeDir } from '../../core/file-modes.js';
import type { Job } from '../../jobs/job.js';
import { shardSchema, type ShardSchemaOptions, type TokenColumn } from '../../proto/shard-batch.js';
import type { DuckDB } from '../duckdb/index.js';
import type { AggregateLayout } from '../features/index.js';
import { FEATURES_GLOB, FeaturesWriter } from './features-file.js';
import type { SetSink } from './sequences.js';
import { ShardBuilder, ShardFileWriter, type ShardLayout } from './shards.js';
import type { ShardSet } from './types.js';
import type { Product } from './vocab.js';
import type { SetWindow } from './windows.js';

export interface SetPlanOptions {
  job: Job;
  window: SetWindow;
  /** The snapshots the set stacks, latest (= window) first. @default [window] */
  snapshots?: SetWindow[];
  labelled: boolean;
  products: Product[];
  aggregates: AggregateLayout;
  tokenColumns: TokenColumn[];
  runDir: string;
}

/** What a shard's thread needs to write its part of a set: plain data (it crosses to worker threads). */
export interface SetPlan {
  window: SetWindow;
  snapshots: SetWindow[];
  labelled: boolean;
  /** Negative downsampling rate (1 = keep all); the train set only. */
  negativeRate: number;
  /** The validation split applies (the train set only). */
  split: boolean;
  schema: ShardSchemaOptions;
  layout: ShardLayout;
  /** `<runDir>/<set>`. */
  dir: string;
}

/** One set's part from one shard. */
export interface ShardSetOutcome {
  shard: number;
  file: string;
  rows: number;
  bytes: number;
  customers: number;
  noHistory: number;
  /** Per product (plan order). */
  positives: number[];
  featuresFiles: string[];
  /** Time spent writing batches and features files (ms). */
  writeMs: number;
}

/** Plans a set and creates `<runDir>/<set>/` afresh. */
export async function planSet(o: SetPlanOptions): Promise<SetPlan> {
  const { job, window } = o;
  const dir = path.join(o.runDir, window.name);
  await rm(dir, { recursive: true, force: true });
  await makeDir(path.join(dir, path.dirname(FEATURES_GLOB)));
  const train = window.name === 'train';
  return {
    window,
    snapshots: o.snapshots ?? [window],
    labelled: o.labelled,
    negativeRate: train ? job.sampling.negativeRate : 1,
    split: train,
    schema: {
      tokenColumns: o.tokenColumns,
      numericColumns: job.columns.numeric.map((n) => n.column),
      products: o.products.map((p) => p.name),
      labelled: o.labelled,
      asOf: window.asOf,
      maxLength: job.sequence.maxLength,
      wideFeatures: o.aggregates.names,
    },
    layout: {
      tokenColumns: o.tokenColumns,
      numericCount: job.columns.numeric.length,
      productCount: o.products.length,
      wideFeatures: o.aggregates.names.length,
      labelled: o.labelled,
      batchRows: job.shards.batchRows,
    },
    dir,
  };
}

/** The set from its shards' outcomes (in shard order); the features files are `<set>/features/*.parquet`. */
export function assembleSet(plan: SetPlan, outcomes: ShardSetOutcome[]): { set: ShardSet; featuresFile: string } {
  const name = plan.window.name;
  const products = plan.schema.products;
  const sorted = [...outcomes].sort((a, b) => a.shard - b.shard);
  const positives = products.map((_, p) => sorted.reduce((n, o) => n + o.positives[p]!, 0));
  return {
    set: {
      name,
      asOf: plan.window.asOf,
      labelled: plan.labelled,
      customers: sorted.reduce((n, o) => n + o.customers, 0),
      noHistory: sorted.reduce((n, o) => n + o.noHistory, 0),
      // Without a covered label window there are no labels to count.
      positives: plan.labelled ? Object.fromEntries(products.map((p, i) => [p, positives[i]!])) : {},
      shards: sorted.map((o) => ({ id: `${name}-${o.shard}`, file: o.file, rows: o.rows, bytes: o.bytes })),
    },
    featuresFile: path.join(plan.dir, FEATURES_GLOB),
  };
}

/** One shard's part of a set: its builder, its Arrow file and its features files. */
export class ShardSetOutput {
  readonly sink: SetSink;
  private readonly pending: { batch: RecordBatch; release: () => void }[] = [];
  private writeMs = 0;

  private constructor(
    plan: SetPlan,
    private readonly shard: number,
    private readonly writer: ShardFileWriter,
    builder: ShardBuilder,
    features: FeaturesWriter,
  ) {
    this.sink = {
      window: plan.window,
      snapshots: plan.snapshots,
      labelled: plan.labelled,
      negativeRate: plan.negativeRate,
      split: plan.split,
      builder,
      features,
      onFull: () => this.pending.push(builder.take()),
      customers: 0,
      noHistory: 0,
      positives: new Float64Array(plan.schema.products.length),
    };
  }

  static async open(db: DuckDB, plan: SetPlan, shard: number, customerType: 'BIGINT' | 'VARCHAR'): Promise<ShardSetOutput> {
    const schema = shardSchema(plan.schema);
    const name = plan.window.name;
    const writer = await ShardFileWriter.create(path.join(plan.dir, `shard-${shard}.arrow`), schema);
    try {
      const featuresPrefix = path.join(plan.dir, path.dirname(FEATURES_GLOB), `part-${String(shard).padStart(4, '0')}`);
      const features = await FeaturesWriter.create(db, `features_${name}_${shard}`, customerType, plan.schema.products, plan.schema.wideFeatures ?? [], featuresPrefix);
      return new ShardSetOutput(plan, shard, writer, new ShardBuilder(schema, plan.layout), features);
    } catch (e) {
      await writer.abort();
      throw e;
    }
  }

  /** Writes the batches taken so far, and a features file when enough rows wait. */
  async write(): Promise<void> {
    const t0 = performance.now();
    for (const p of this.pending.splice(0)) {
      await this.writer.write(p.batch);
      p.release();
    }
    await this.sink.features.rotate();
    this.writeMs += performance.now() - t0;
  }

  /** Writes the last partial batch, ends the shard file and writes the last features file. */
  async finish(): Promise<ShardSetOutcome> {
    const t0 = performance.now();
    if (this.sink.builder.rows > 0) this.pending.push(this.sink.builder.take());
    await this.write();
    const bytes = await this.writer.close();
    const featuresFiles = await this.sink.features.finish();
    this.writeMs += performance.now() - t0;
    const sink = this.sink;
    return {
      shard: this.shard,
      file: this.writer.file,
      rows: this.writer.rows,
      bytes,
      customers: sink.customers,
      noHistory: sink.noHistory,
      positives: Array.from(sink.positives),
      featuresFiles,
      writeMs: this.writeMs,
    };
  }

  /** Releases the file and the features appender after a failure (finish() not reached). */
  async abort(): Promise<void> {
    await this.writer.abort();
    this.sink.features.close();
  }
}
