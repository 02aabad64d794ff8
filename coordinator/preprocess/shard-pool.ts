/**
 * Runs the sequence pass's shards on `threads` threads: each thread has its own ShardRunner (its own DuckDB)
 * and takes the next shard when it is done with one, so threads stay busy when shards differ in size. One
 * thread runs in this thread, without a worker. A shard's files do not depend on which thread built it.
 */
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { NextbuyError, type ErrorCode } from '../../core/errors.js';
import type { DuckDBOptions } from '../duckdb/index.js';
import type { DuplicateEvent } from './sequences.js';
import { ShardRunner, type ShardOutcome, type ShardPassPlan } from './shard-task.js';

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

/** Builds shards 0 … shards − 1; outcomes in shard order. */
export async function runShardPass(plan: ShardPassPlan, shards: number, o: ShardPoolOptions): Promise<ShardOutcome[]> {
  const threads = Math.max(1, Math.min(o.threads, shards));
  const done = new Array<number>(shards).fill(0);
  const progress = (shard: number, events: number) => {
    done[shard] = events;
    o.onProgress?.(done.reduce((a, b) => a + b, 0));
  };
  const duckdbOf = (thread: number) => ({ ...o.duckdb, tempDirectory: path.join(o.duckdb.tempDirectory, String(thread)) });
  const outcomes: ShardOutcome[] = [];
  if (threads === 1) {
    await using runner = await ShardRunner.open(plan, duckdbOf(0));
    for (let s = 0; s < shards; s++) {
      outcomes.push(await runner.run(s, { onProgress: (events) => progress(s, events), onDuplicates: (found) => o.onDuplicates?.(found) }));
    }
    return outcomes;
  }
  let next = 0;
  const workers: { worker: Worker; exited: Promise<unknown> }[] = [];
  let failed = false;
  try {
    await new Promise<void>((resolve, reject) => {
      let running = threads;
      const fail = (e: Error) => {
        if (failed) return;
        failed = true;
        reject(e);
      };
      for (let t = 0; t < threads; t++) {
        const worker = startWorker({ plan, duckdb: duckdbOf(t) });
        workers.push({ worker, exited: new Promise((r) => worker.once('exit', r)) });
        const take = () => {
          if (failed) return;
          if (next < shards) worker.postMessage({ shard: next++ });
          else {
            worker.postMessage(null);
            if (--running === 0) resolve();
          }
        };
        worker.on('message', (m: FromShardWorker) => {
          switch (m.type) {
            case 'ready':
              return take();
            case 'progress':
              return progress(m.shard, m.events);
            case 'duplicates':
              return o.onDuplicates?.(m.found);
            case 'done':
              outcomes.push(m.outcome);
              return take();
            case 'error':
              return fail(fromWireError(m.error));
          }
        });
        worker.on('error', fail);
        worker.on('exit', (code) => {
          if (code !== 0) fail(new Error(`a sequence thread exited with code ${code}`));
        });
      }
    });
  } finally {
    // Told to close, a worker closes its DuckDB and exits; after a failure the others are stopped at once.
    if (failed) await Promise.all(workers.map((w) => w.worker.terminate()));
    await Promise.all(workers.map((w) => w.exited));
  }
  return outcomes.sort((a, b) => a.shard - b.shard);
}
