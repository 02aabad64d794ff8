/**
 * Test helpers for the data plane: seeded shard files in a temp dir, a real cluster of echo worker
 * processes on 127.0.0.1, and checks that a scoring run holds every customer exactly once with the
 * right score.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { RecordBatch } from 'apache-arrow';
import { expect } from 'vitest';
import { LocalBackend, startCluster, type Cluster, type LocalWorkerProcess, type WorkerPool } from '../../coordinator/cluster/index.js';
import { runShards, type ScheduleEvent, type ScheduleOptions, type ShardRunSummary, type ShardTask } from '../../coordinator/schedule/index.js';
import { channelCredentials } from '../../proto/credentials.js';
import {
  createWorkerClient,
  grpc,
  type ScoreReply,
  type ScoreRequest,
} from '../../proto/index.js';
import { decodeResults, readResultColumns } from '../../proto/result-batch.js';
import { sampleBatch, writeShardFile } from './sample-shards.js';
import { echoScore } from '../../worker/echo-engine.js';
import { mulberry32 as seeded } from '../../core/random.js';
import { sessionWith, signed } from './session.js';

export { seeded };


export interface SampleShardOptions {
  shards: number;
  customersPerShard: number;
  /** Rows per record batch inside a shard. @default 50 */
  batchRows?: number;
  /** @default 20 */
  maxLength?: number;
  /** @default 1 */
  seed?: number;
}

export interface SampleShards {
  dir: string;
  shards: ShardTask[];
  customers: string[];
  /** Removes the temp dir. */
  cleanup(): Promise<void>;
}

/** Customer ids of shard s are `s<s>-c<i>`, so a test can aim at one shard through its customers. */
export { sampleBatch, sampleShardSchema, writeShardFile } from './sample-shards.js';

export function customerId(shard: number, i: number): string {
  return `s${shard}-c${i}`;
}

export async function writeSampleShards(o: SampleShardOptions): Promise<SampleShards> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-dataplane-'));
  const random = seeded(o.seed ?? 1);
  const batchRows = o.batchRows ?? 50;
  const shards: ShardTask[] = [];
  const customers: string[] = [];
  for (let s = 0; s < o.shards; s++) {
    const ids = Array.from({ length: o.customersPerShard }, (_, i) => customerId(s, i));
    customers.push(...ids);
    const batches: RecordBatch[] = [];
    for (let at = 0; at < ids.length; at += batchRows) batches.push(sampleBatch(ids.slice(at, at + batchRows), random, o.maxLength));
    const file = path.join(dir, `shard-${String(s).padStart(3, '0')}.arrows`);
    await writeShardFile(file, batches);
    shards.push({ id: `shard-${s}`, file });
  }
  return { dir, shards, customers, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** One JSON log line of a worker process. */
export interface WorkerLogLine {
  worker: string;
  event: string;
  [field: string]: unknown;
}

export interface TestClusterOptions {
  workers: number;
  /** @default 1500 */
  heartbeatTimeoutMs?: number;
  /** Environment for every worker (echo knobs). */
  env?: Record<string, string>;
  envFor?: (index: number) => Record<string, string>;
  /** @default 1 (startCluster returns once one worker joined) */
  minWorkers?: number;
}

export interface TestCluster {
  cluster: Cluster;
  pool: WorkerPool;
  backend: LocalBackend;
  logs: WorkerLogLine[];
  process(name: string): LocalWorkerProcess;
  /** Resolves with the first log line (already seen or future) of `worker` matching. */
  waitForLog(worker: string, event: string, match?: (l: WorkerLogLine) => boolean): Promise<WorkerLogLine>;
  /** Resolves once the pool holds `count` ready workers. */
  waitForReady(count: number): Promise<void>;
}

export const RUN_ID = 'run-test';
export const TEST_TOKEN = 'test-token-0123456789';

export async function withCluster<T>(o: TestClusterOptions, fn: (c: TestCluster) => Promise<T>): Promise<T> {
  const logs: WorkerLogLine[] = [];
  const waiters: { worker: string; event: string; match: (l: WorkerLogLine) => boolean; resolve: (l: WorkerLogLine) => void }[] = [];
  const backend = new LocalBackend({
    engine: 'echo',
    // Per-shard events (score-start, score-done) are debug lines: the tests wait for them.
    env: { NEXTBUY_LOG: 'debug', ...o.env },
    envFor: o.envFor,
    stopGraceMs: 5_000,
    onOutput: (worker, stream, line) => {
      if (stream !== 'stderr') return;
      let parsed: WorkerLogLine;
      try {
        parsed = JSON.parse(line) as WorkerLogLine;
      } catch {
        process.stderr.write(`[${worker}] ${line}\n`);
        return;
      }
      logs.push(parsed);
      for (const w of [...waiters]) {
        if (w.worker === parsed.worker && w.event === parsed.event && w.match(parsed)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(parsed);
        }
      }
    },
  });
  const cluster = await startCluster({
    backend,
    runId: RUN_ID,
    account: 'test',
    token: TEST_TOKEN,
    workers: o.workers,
    heartbeatTimeoutMs: o.heartbeatTimeoutMs ?? 1_500,
    minWorkers: o.minWorkers ?? o.workers,
    startTimeoutMs: 60_000,
  });
  try {
    return await fn({
      cluster,
      pool: cluster.pool,
      backend,
      logs,
      process: (name) => {
        const p = backend.processes().find((x) => x.name === name);
        if (!p) throw new Error(`no local worker named ${name}`);
        return p;
      },
      waitForLog: (worker, event, match = () => true) => {
        const seen = logs.find((l) => l.worker === worker && l.event === event && match(l));
        if (seen) return Promise.resolve(seen);
        return new Promise((resolve) => waiters.push({ worker, event, match, resolve }));
      },
      waitForReady: (count) => cluster.pool.waitForWorkers(count, 60_000),
    });
  } finally {
    await cluster.stop();
  }
}

export const MODEL_VERSIONS = ['m-lstm-1', 'm-attn-1'];
export const PRODUCTS = ['any', 'cat-7'];

/** Every result row, keyed `customer|model|product`: how often it came and its score. */
export type ResultTally = Map<string, { count: number; score: number }>;

export interface ScoreRun {
  tally: ResultTally;
  summary: ShardRunSummary;
  /** How often onResult was called per shard. */
  deliveries: Map<string, number>;
  events: ScheduleEvent[];
}

/** Scores the shards on the pool with the echo models and tallies every result row. */
export async function scoreAll(
  pool: WorkerPool,
  shards: ShardTask[],
  o: Partial<ScheduleOptions> & { beforeResult?: (shardId: string) => Promise<void> } = {},
): Promise<ScoreRun> {
  const tally: ResultTally = new Map();
  const deliveries = new Map<string, number>();
  const events: ScheduleEvent[] = [];
  const summary = await runShards(
    pool,
    shards,
    {
      kind: 'score',
      modelVersions: MODEL_VERSIONS,
      products: PRODUCTS,
      onResult: async (shardId, _attempt, results) => {
        await o.beforeResult?.(shardId);
        deliveries.set(shardId, (deliveries.get(shardId) ?? 0) + 1);
        for (const b of decodeResults(results)) {
          const c = readResultColumns(b);
          for (let i = 0; i < c.customerIds.length; i++) {
            const key = `${c.customerIds[i]}|${c.modelVersions[i]}|${c.products[i]}`;
            const t = tally.get(key);
            if (t) t.count++;
            else tally.set(key, { count: 1, score: c.scores[i]! });
          }
        }
      },
    },
    {
      heartbeatTimeoutMs: 1_500,
      inFlightPerWorker: 2,
      maxAttemptsPerShard: 3,
      backoff: { initialDelayMs: 200, random: seeded(7) },
      ...o,
      onEvent: (e) => {
        events.push(e);
        o.onEvent?.(e);
      },
    },
  );
  return { tally, summary, deliveries, events };
}

/** Every customer × model × product exactly once, with the echo engine's score, and nothing else. */
export function expectEveryCustomerOnce(run: ScoreRun, customers: string[], shards: ShardTask[]): void {
  const missing: string[] = [];
  const wrong: string[] = [];
  for (const c of customers) {
    for (const m of MODEL_VERSIONS) {
      for (const p of PRODUCTS) {
        const key = `${c}|${m}|${p}`;
        const t = run.tally.get(key);
        if (!t) missing.push(key);
        else if (t.count !== 1 || t.score !== echoScore(c, m, p)) wrong.push(`${key}: ${t.count}× score ${t.score}`);
      }
    }
  }
  expect(missing).toEqual([]);
  expect(wrong).toEqual([]);
  expect(run.tally.size).toBe(customers.length * MODEL_VERSIONS.length * PRODUCTS.length);
  expect([...run.deliveries.entries()].sort()).toEqual(shards.map((s) => [s.id, 1]).sort());
}

/** Who a hand-made call comes from: the test cluster's run and token unless said otherwise (a wrong token: a stranger). */
export interface RawCaller {
  token?: string;
  runId?: string;
  account?: string;
  protocolVersion?: number;
}

async function callerMetadata(address: string, rpc: string, o: RawCaller): Promise<grpc.Metadata> {
  const signer = await sessionWith(address, { token: o.token ?? TEST_TOKEN, runId: o.runId ?? RUN_ID, account: o.account ?? 'test' });
  return signed(signer, rpc, o.protocolVersion);
}

/** Opens a Score stream to a worker by hand (tests send what a correct coordinator never would). */
export async function rawScore(address: string, requests: ScoreRequest[], o: RawCaller = {}): Promise<{ replies: ScoreReply[]; error: grpc.ServiceError | null }> {
  const md = await callerMetadata(address, 'Score', o);
  const client = createWorkerClient(address, channelCredentials());
  const call = client.Score(md);
  const replies: ScoreReply[] = [];
  return new Promise((resolve) => {
    call.on('data', (r: ScoreReply) => replies.push(r));
    call.on('error', (e: grpc.ServiceError) => {
      client.close();
      resolve({ replies, error: e });
    });
    call.on('status', (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) {
        client.close();
        resolve({ replies, error: null });
      }
    });
    for (const r of requests) call.write(r);
    call.end();
  });
}

/** A unary call to a worker by hand, e.g. Hello with another protocol version (Hello goes without a session). */
export async function rawUnary<Res>(address: string, rpc: 'Hello' | 'Health' | 'Drain', request: unknown, o: RawCaller = {}): Promise<Res> {
  const md = rpc === 'Hello' ? new grpc.Metadata() : await callerMetadata(address, rpc, o);
  const client = createWorkerClient(address, channelCredentials());
  return new Promise<Res>((resolve, reject) =>
    (client[rpc] as unknown as (r: unknown, m: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: Res) => void) => void).call(
      client,
      request,
      md,
      { deadline: Date.now() + 10_000 },
      (e, v) => {
        client.close();
        if (e) reject(e);
        else resolve(v!);
      },
    ),
  );
}
