import type { BackoffOptions } from '../../core/backoff.js';
import { UsageError } from '../../core/errors.js';
import type { Job } from '../../jobs/job.js';
import type { WorkerHandle } from '../cluster/index.js';

/** One shard to ship: an Arrow IPC stream file written by preprocess. */
export interface ShardTask {
  id: string;
  file: string;
}

/** Score every row of every shard with these models; results come back per shard. */
export interface ScoreWork {
  kind: 'score';
  modelVersions: string[];
  /** For product-keyed models; [] for single-product models. */
  products: string[];
  /**
   * Called exactly once per shard, with the accepted attempt's complete results: one Arrow IPC stream of
   * result batches (proto/result-batch.ts; `decodeResults` reads it). Shards of
   * different workers may complete concurrently; the worker's slot stays taken until this settles
   * (a slow consumer slows the run rather than piling up results). Throwing fails the run.
   */
  onResult(shardId: string, attempt: number, results: Uint8Array): void | Promise<void>;
  /** Runs once per worker before its first shard (load the models here); a worker it fails on is not used. */
  prepare?(worker: WorkerHandle, signal: AbortSignal): Promise<void>;
}

/** Ship each shard's training rows to one worker, which keeps them for training rounds. */
export interface TrainingDataWork {
  kind: 'training-data';
  datasetId: string;
  /** Called exactly once per shard, naming the worker that holds its rows. */
  onLoaded(shardId: string, worker: WorkerHandle, rows: number): void | Promise<void>;
  prepare?(worker: WorkerHandle, signal: AbortSignal): Promise<void>;
}

export type ShardWork = ScoreWork | TrainingDataWork;

export type ScheduleEvent =
  | { type: 'lease'; shardId: string; attempt: number; worker: string }
  | { type: 'progress'; shardId: string; attempt: number; worker: string; rows: number }
  | { type: 'attempt-failed'; shardId: string; attempt: number; worker: string; error: string; retryInMs: number; counted: boolean }
  | { type: 'accepted'; shardId: string; attempt: number; worker: string; rows: number }
  | { type: 'discarded'; shardId: string; attempt: number; worker: string; why: string }
  | { type: 'worker-unusable'; worker: string; error: string }
  | { type: 'waiting-for-workers'; pendingShards: number };

export interface ScheduleOptions {
  /** Shards in flight per worker. @default 2 */
  inFlightPerWorker?: number;
  /** A shard that fails on this many different workers fails the run. @default 3 */
  maxAttemptsPerShard?: number;
  /** Attempts of one shard in all, retries on the same worker included. @default 2 × maxAttemptsPerShard */
  maxTotalAttemptsPerShard?: number;
  /** The pool's heartbeat deadline; sets the default wait for workers. */
  heartbeatTimeoutMs: number;
  /** With no worker ready, wait this long for one to join before failing. @default max(60 s, 2 × heartbeatTimeoutMs) */
  noWorkerTimeoutMs?: number;
  /** Arrow payloads sent ahead of a worker's replies on one shard stream. @default 2 */
  streamWindow?: number;
  /** Record batches are grouped into payloads up to this size. @default 4 MiB */
  targetPayloadBytes?: number;
  /** Re-lease delays; tests pass a seeded `random`. @default core/backoff.ts constants */
  backoff?: BackoffOptions;
  signal?: AbortSignal;
  onEvent?: (e: ScheduleEvent) => void;
  /**
   * A graceful stop: once aborted, no shard is leased any more, in-flight shards get `stopGraceMs` to
   * finish (their results are delivered), then the run rejects with the signal's reason. @default none
   */
  stopSignal?: AbortSignal;
  /** @default 20_000 ms */
  stopGraceMs?: number;
}

export interface CompiledScheduleOptions {
  inFlightPerWorker: number;
  maxAttemptsPerShard: number;
  maxTotalAttemptsPerShard: number;
  heartbeatTimeoutMs: number;
  noWorkerTimeoutMs: number;
  streamWindow: number;
  targetPayloadBytes: number | undefined;
  backoff: BackoffOptions;
  signal: AbortSignal | undefined;
  onEvent: (e: ScheduleEvent) => void;
  stopSignal: AbortSignal | undefined;
  stopGraceMs: number;
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`schedule option ${name} must be a whole number ≥ 1, got ${value}`);
  return value;
}

export function compileScheduleOptions(o: ScheduleOptions): CompiledScheduleOptions {
  const maxAttempts = positiveInteger(o.maxAttemptsPerShard ?? 3, 'maxAttemptsPerShard');
  return {
    inFlightPerWorker: positiveInteger(o.inFlightPerWorker ?? 2, 'inFlightPerWorker'),
    maxAttemptsPerShard: maxAttempts,
    maxTotalAttemptsPerShard: Math.max(maxAttempts, positiveInteger(o.maxTotalAttemptsPerShard ?? 2 * maxAttempts, 'maxTotalAttemptsPerShard')),
    heartbeatTimeoutMs: o.heartbeatTimeoutMs,
    noWorkerTimeoutMs: o.noWorkerTimeoutMs ?? Math.max(60_000, 2 * o.heartbeatTimeoutMs),
    streamWindow: positiveInteger(o.streamWindow ?? 2, 'streamWindow'),
    targetPayloadBytes: o.targetPayloadBytes,
    backoff: o.backoff ?? {},
    signal: o.signal,
    onEvent: o.onEvent ?? (() => {}),
    stopSignal: o.stopSignal,
    stopGraceMs: o.stopGraceMs ?? 20_000,
  };
}

/** The schedule options a job file sets. */
export function scheduleOptionsFromJob(job: Job): ScheduleOptions {
  return {
    inFlightPerWorker: job.cluster.inFlightPerWorker,
    maxAttemptsPerShard: job.cluster.maxAttemptsPerShard,
    heartbeatTimeoutMs: job.cluster.heartbeatTimeoutMs,
  };
}

/** What a run did, for logs and reports. */
export interface ShardRunSummary {
  shards: number;
  /** Attempts started, re-leases included. */
  attempts: number;
  /** Attempts that failed and were leased again. */
  reLeased: number;
  /** Attempts that finished after their lease was cancelled or their shard accepted: dropped, never counted. */
  discarded: number;
  rowsSent: number;
  bytesSent: number;
  resultRows: number;
  ms: number;
  /** Shards accepted per worker name. */
  byWorker: Record<string, number>;
}
