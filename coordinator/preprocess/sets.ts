/**
 * Shard sets being written (train or score). The coordinator plans a set (SetPlan: its folder, schema and
 * windows); each shard's thread writes its part (ShardSetOutput: the shard's Arrow file);
 * the parts' outcomes add up to the set (ShardSet). Full batches are taken from the builder at once (so it
 * never holds more than batchRows rows) and written between DuckDB chunks.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { RecordBatch } from 'apache-arrow';
import { makeDir } from '../../core/file-modes.js';
import type { Job } from '../../jobs/job.js';
import { shardSchema, type ShardSchemaOptions, type TokenColumn } from '../../proto/shard-batch.js';
import type { AggregateLayout } from '../features/index.js';
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
  /** Time spent writing batches (ms). */
  writeMs: number;
}

/** Plans a set and creates `<runDir>/<set>/` afresh. */
export async function planSet(o: SetPlanOptions): Promise<SetPlan> {
  const { job, window } = o;
  const dir = path.join(o.runDir, window.name);
  await rm(dir, { recursive: true, force: true });
  await makeDir(dir);
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

/** The set from its shards' outcomes, in shard order. */
export function assembleSet(plan: SetPlan, sorted: ShardSetOutcome[]): ShardSet {
  const name = plan.window.name;
  const products = plan.schema.products;
  const positives = products.map((_, p) => sorted.reduce((n, o) => n + o.positives[p]!, 0));
  return {
    name,
    asOf: plan.window.asOf,
    labelled: plan.labelled,
    customers: sorted.reduce((n, o) => n + o.customers, 0),
    noHistory: sorted.reduce((n, o) => n + o.noHistory, 0),
    // Without a covered label window there are no labels to count.
    positives: plan.labelled ? Object.fromEntries(products.map((p, i) => [p, positives[i]!])) : {},
    shards: sorted.map((o) => ({ id: `${name}-${o.shard}`, file: o.file, rows: o.rows, bytes: o.bytes })),
  };
}

/** One shard's part of a set: its builder and its Arrow file. */
export class ShardSetOutput {
  readonly sink: SetSink;
  private readonly pending: { batch: RecordBatch; release: () => void }[] = [];
  private writeMs = 0;

  private constructor(
    plan: SetPlan,
    private readonly shard: number,
    private readonly writer: ShardFileWriter,
    builder: ShardBuilder,
  ) {
    this.sink = {
      window: plan.window,
      snapshots: plan.snapshots,
      labelled: plan.labelled,
      negativeRate: plan.negativeRate,
      split: plan.split,
      builder,
      onFull: () => this.pending.push(builder.take()),
      customers: 0,
      noHistory: 0,
      positives: new Float64Array(plan.schema.products.length),
    };
  }

  static async open(plan: SetPlan, shard: number): Promise<ShardSetOutput> {
    const schema = shardSchema(plan.schema);
    const writer = await ShardFileWriter.create(path.join(plan.dir, `shard-${shard}.arrow`), schema);
    return new ShardSetOutput(plan, shard, writer, new ShardBuilder(schema, plan.layout));
  }

  /** Writes the batches taken so far. */
  async write(): Promise<void> {
    const t0 = performance.now();
    for (const p of this.pending.splice(0)) {
      await this.writer.write(p.batch);
      p.release();
    }
    this.writeMs += performance.now() - t0;
  }

  /** Writes the last partial batch and ends the shard file. */
  async finish(): Promise<ShardSetOutcome> {
    const t0 = performance.now();
    if (this.sink.builder.rows > 0) this.pending.push(this.sink.builder.take());
    await this.write();
    const bytes = await this.writer.close();
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
      writeMs: this.writeMs,
    };
  }

  /** Releases the file after a failure (finish() not reached). */
  async abort(): Promise<void> {
    await this.writer.abort();
  }
}
