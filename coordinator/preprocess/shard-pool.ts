/**
 * Runs the sequence pass's shards on `threads` threads, this one and `threads` − 1 workers: each has its own
 * ShardRunner (its own DuckDB) and takes the next shard when it is done with one, so threads stay busy when
 * shards differ in size. A shard's files do not depend on which thread built it.
 */
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { NextbuyError, type ErrorCode } from '../../core/errors.js';
import type { DuckDBOptions } from '../duckdb/index.js';
import type { DuplicateEvent } from './sequences.js';
import { ShardRunner, type ShardOutcome, type ShardPassPlan } from './shard-task.js';

/** How long a stopped thread may take to interrupt DuckDB and close before it is terminated (a last resort: see shard-worker.ts). */
const STOP_GRACE_MS = 30_000;

/** Compiled (`npm run build`): shard-worker.js with plain node; from source: shard-worker.ts through tsx. */
const COMPILED = import.meta.url.endsWith('.js');

/** A worker thread running shard-worker; from source, it first registers tsx's loader (Node 20 ignores `--import` in a worker's execArgv). */
function startWorker(workerData: ShardWorkerData): Worker {
  if (COMPILED) return new Worker(new URL('./shard-worker.js', import.meta.url), { workerData });
  const entry = new URL('./shard-worker.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

export interface ShardPoolOptions {
  /** Threads to use (at most one per shard). */
  threads: number;
  /** Settings of each thread's DuckDB (memoryLimit: that thread's share); each gets `tempDirectory/<thread>`. */
  duckdb: Omit<DuckDBOptions, 'threads'> & { tempDirectory: string };
  /** Events handled so far, all shards together. */
  onProgress?: (events: number) => void;
  onDuplicates?: (found: DuplicateEvent[]) => void;
}

export interface ShardWorkerData {
  plan: ShardPassPlan;
  duckdb: Omit<DuckDBOptions, 'threads'>;
}

export type FromShardWorker =
  | { type: 'ready' }
  | { type: 'progress'; shard: number; events: number }
  | { type: 'duplicates'; found: DuplicateEvent[] }
  | { type: 'done'; outcome: ShardOutcome }
  | { type: 'error'; error: WireError };

interface WireError {
  message: string;
  name: string;
  /** A NextbuyError's code, or a system error's (ENOSPC …). */
  code?: string;
  syscall?: string;
  path?: string;
  nextbuy: boolean;
}

export function toWireError(e: unknown): WireError {
  const err = e instanceof Error ? e : new Error(String(e));
  const sys = err as NodeJS.ErrnoException;
  return { message: err.message, name: err.name, code: sys.code, syscall: sys.syscall, path: sys.path, nextbuy: err instanceof NextbuyError };
}

function fromWireError(w: WireError): Error {
  if (w.nextbuy && w.code) {
    const e = new NextbuyError(w.code as ErrorCode, w.message);
    e.name = w.name;
    return e;
  }
  const e = new Error(w.message) as NodeJS.ErrnoException;
  e.name = w.name;
  if (w.code) e.code = w.code;
  if (w.syscall) e.syscall = w.syscall;
  if (w.path) e.path = w.path;
  return e;
}

/** The pass's thread count: resources.threads (all cores when unset), at most one per shard. */
export function sequenceThreads(threads: number | null, shards: number): number {
  return Math.max(1, Math.min(threads ?? os.availableParallelism(), shards));
}

/**
 * A pool of shard runners: this thread's and `threads` − 1 worker threads'. `start` spawns the workers at once,
 * so that they load and open their databases while the coordinator still prepares the shards' input (a worker
 * costs a fraction of a second of CPU to start: this thread builds shards too, rather than wait for them);
 * `run` then builds shards 0 … shards − 1, each thread taking the next one when it is done with one.
 */
export class ShardPool {
  private readonly workers: { worker: Worker; exited: Promise<unknown> }[] = [];
  private readonly idle: Worker[] = [];
  private dispatch: ((worker: Worker) => void) | null = null;
  private failure: Error | null = null;
  private onFailure: ((e: Error) => void) | null = null;
  /** This thread's runner while run() builds shards. */
  private local: ShardRunner | null = null;
  /** Set by run(): where a worker's progress and finished shards go. */
  private listeners: { progress?: (shard: number, events: number) => void; done?: (o: ShardOutcome) => void } = {};

  private constructor(
    private readonly plan: ShardPassPlan,
    private readonly o: ShardPoolOptions,
    readonly threads: number,
  ) {}

  /** `threads` (at most one per shard) runners, this thread's included. */
  static start(plan: ShardPassPlan, shards: number, o: ShardPoolOptions): ShardPool {
    const pool = new ShardPool(plan, o, Math.max(1, Math.min(o.threads, shards)));
    for (let t = 1; t < pool.threads; t++) pool.spawn(t);
    return pool;
  }

  private duckdbOf(thread: number): ShardWorkerData['duckdb'] {
    return { ...this.o.duckdb, tempDirectory: path.join(this.o.duckdb.tempDirectory, String(thread)) };
  }

  private spawn(t: number): void {
    const worker = startWorker({ plan: this.plan, duckdb: this.duckdbOf(t) });
    this.workers.push({ worker, exited: new Promise((r) => worker.once('exit', r)) });
    worker.on('message', (m: FromShardWorker) => {
      switch (m.type) {
        case 'ready':
          return this.dispatch ? this.dispatch(worker) : void this.idle.push(worker);
        case 'progress':
          return this.listeners.progress?.(m.shard, m.events);
        case 'duplicates':
          return this.o.onDuplicates?.(m.found);
        case 'done':
          this.listeners.done?.(m.outcome);
          return this.dispatch?.(worker);
        case 'error':
          return this.fail(fromWireError(m.error));
      }
    });
    worker.on('error', (e) => this.fail(e));
    worker.on('exit', (code) => {
      if (code !== 0) this.fail(new Error(`a sequence thread exited with code ${code}`));
    });
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    this.local?.stop();
    this.onFailure?.(e);
  }

  /** Builds shards 0 … shards − 1; outcomes in shard order. The pool is closed afterwards. */
  async run(shards: number): Promise<ShardOutcome[]> {
    const done = new Array<number>(shards).fill(0);
    const progress = (shard: number, events: number) => {
      done[shard] = events;
      this.o.onProgress?.(done.reduce((a, b) => a + b, 0));
    };
    const outcomes: ShardOutcome[] = [];
    const finished = (o: ShardOutcome) => {
      outcomes.push(o);
      progress(o.shard, o.events);
    };
    let next = 0;
    const take = () => (this.failure === null && next < shards ? next++ : null);
    const local = async () => {
      await using runner = (this.local = await ShardRunner.open(this.plan, this.duckdbOf(0)));
      for (let s = take(); s !== null; s = take()) {
        const shard = s;
        finished(await runner.run(shard, { onProgress: (events) => progress(shard, events), onDuplicates: (found) => this.o.onDuplicates?.(found) }));
      }
    };
    try {
      // Settled before the pool closes (its database closed), whether it failed or another thread did.
      const here = local().then(
        () => undefined,
        (e: unknown) => this.fail(e instanceof Error ? e : new Error(String(e))),
      );
      const workers = new Promise<void>((resolve, reject) => {
        if (this.failure) return reject(this.failure);
        this.onFailure = reject;
        let running = this.workers.length;
        if (running === 0) return resolve();
        this.listeners = { progress, done: finished };
        this.dispatch = (worker) => {
          if (this.failure) return;
          const shard = take();
          if (shard !== null) worker.postMessage({ shard });
          else {
            worker.postMessage(null);
            if (--running === 0) resolve();
          }
        };
        for (const worker of this.idle.splice(0)) this.dispatch(worker);
      });
      await Promise.allSettled([here, workers]);
      if (this.failure) throw this.failure;
    } finally {
      this.local = null;
      await this.close();
    }
    return outcomes.sort((a, b) => a.shard - b.shard);
  }

  /**
   * Waits for the threads to end. When the pass failed or never ran, asks each to stop (its shard in progress
   * is interrupted and its database closed); one still running after STOP_GRACE_MS is terminated.
   */
  async close(): Promise<void> {
    const finished = this.dispatch !== null && this.failure === null;
    let grace: NodeJS.Timeout | undefined;
    if (!finished) {
      for (const w of this.workers) w.worker.postMessage(null);
      grace = setTimeout(() => this.workers.forEach((w) => void w.worker.terminate()), STOP_GRACE_MS);
    }
    try {
      await Promise.all(this.workers.map((w) => w.exited));
    } finally {
      clearTimeout(grace);
    }
  }
}
