/**
 * Builds one shard of every set: reads the shard's events sorted by (customer, time) from its own DuckDB,
 * runs the sequence kernel over them, and writes the shard's Arrow file of each set.
 * A ShardRunner holds one single-threaded DuckDB and builds shards one after the other; the pool
 * (./shard-pool.ts) runs one runner per thread. Everything a runner gets is plain data, so it can live in a
 * worker thread, and a shard's files depend only on its events: the same bytes whatever the thread count.
 */
import type { Job } from '../../jobs/job.js';
import { openDuckDB, type DuckDB, type DuckDBOptions } from '../duckdb/index.js';
import type { AggregateLayout } from '../features/index.js';
import { Int64Map, type Int64MapData } from './hash.js';
import { buildSequences, type DuplicateEvent } from './sequences.js';
import { ShardSetOutput, type SetPlan, type ShardSetOutcome } from './sets.js';
import { shardInputFiles, shardStreamSql } from './shard-input.js';

/** What every shard of a pass shares. */
export interface ShardPassPlan {
  job: Job;
  /** Where ./shard-input.ts wrote the shards' events. */
  inputDir: string;
  customerType: 'BIGINT' | 'VARCHAR';
  numericCount: number;
  sets: SetPlan[];
  itemIds: Int64MapData | null;
  categoryIds: Int64MapData | null;
  /** Token id per event type index. */
  eventIds: Int32Array;
  /** Per product: the (low, high) hash halves of its category, or a null entry for `any`. */
  productCategories: ([number, number] | null)[];
  aggregates: AggregateLayout;
}

export interface ShardOutcome {
  shard: number;
  events: number;
  duplicates: number;
  /** Per set, in plan order. */
  sets: ShardSetOutcome[];
}

export interface ShardHooks {
  /** Events of this shard handled so far. */
  onProgress(events: number): void;
  /** Duplicates dropped since the last call (rare). */
  onDuplicates(found: DuplicateEvent[]): void;
}

export class ShardRunner implements AsyncDisposable {
  private stopped = false;
  private readonly itemIds: Int64Map | null;
  private readonly categoryIds: Int64Map | null;

  private constructor(
    private readonly plan: ShardPassPlan,
    private readonly db: DuckDB,
  ) {
    this.itemIds = plan.itemIds ? Int64Map.fromData(plan.itemIds) : null;
    this.categoryIds = plan.categoryIds ? Int64Map.fromData(plan.categoryIds) : null;
  }

  /** `duckdb`: the runner's own database; one thread, so that its work is one core's and its output order fixed. */
  static async open(plan: ShardPassPlan, duckdb: Omit<DuckDBOptions, 'threads'>): Promise<ShardRunner> {
    return new ShardRunner(plan, await openDuckDB({ ...duckdb, threads: 1 }));
  }

  async run(shard: number, hooks: ShardHooks): Promise<ShardOutcome> {
    const p = this.plan;
    const outputs: ShardSetOutput[] = [];
    try {
      for (const set of p.sets) outputs.push(await ShardSetOutput.open(set, shard));
      const files = shardInputFiles(p.inputDir, shard);
      const found: DuplicateEvent[] = [];
      const totals = files
        ? await buildSequences(this.db, {
            job: p.job,
            sql: shardStreamSql(files, p.numericCount),
            customerType: p.customerType,
            numericCount: p.numericCount,
            sets: outputs.map((o) => o.sink),
            itemIds: this.itemIds,
            categoryIds: this.categoryIds,
            eventIds: p.eventIds,
            productCategories: p.productCategories,
            aggregates: p.aggregates,
            onDuplicate: (d) => found.push(d),
            afterChunk: async (done) => {
              if (this.stopped) throw new Error(`shard ${shard}: stopped`);
              for (const o of outputs) await o.write();
              if (found.length > 0) hooks.onDuplicates(found.splice(0));
              hooks.onProgress(done);
            },
          })
        : { events: 0, duplicates: 0 };
      const sets: ShardSetOutcome[] = [];
      for (const o of outputs.splice(0)) sets.push(await o.finish());
      return { shard, ...totals, sets };
    } finally {
      for (const o of outputs) await o.abort();
    }
  }

  /** Stops a run in progress (it rejects, its files removed) at its next chunk, or at once when DuckDB is still sorting. */
  stop(): void {
    this.stopped = true;
    this.db.interrupt();
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
