/**
 * Transport benchmark: nextbuy's shard transport against raw grpc-js between two processes.
 *
 *   node --import tsx bench/transport.ts [--shards N] [--customers 24576] [--batch-rows 4096] [--workers 1,2,4] [--repeat 7] [--warmup-passes 8] [--densify]
 *
 * --shards defaults to 4 per worker of the largest count, at least 16. Shards of 24,576 customers are six
 * payloads each; a night's real shards are larger (1.5 M customers in 8 shards). Each shard costs a
 * gRPC call and a lease on top of its bytes (about 1.7 ms of coordinator and 1.3 ms of worker CPU on
 * the 2-core machine of bench/results), which smaller shards pay more often: `--customers 8192` (two
 * payloads per shard) shows it.
 *
 * 1. Baseline: raw grpc-js, one bidi stream of bytes messages (identity serialisation, no protobuf),
 *    client → server process on 127.0.0.1, a 16-byte ack per message; same message size as the shards'.
 * 2. Shard transport: shard files (Arrow IPC) → scheduler → echo workers that decode each batch to its
 *    dense form, echo a score column and send Arrow results back; MB/s (shard payload bytes) and sequences/s.
 *    --densify: the echo engine also reads every dense array (what a model costs the worker beyond transport).
 * 3. The scoring run's scaling with 1, 2 and 4 workers.
 * Prints the machine, the best of --repeat runs for each figure, CPU ms per MB on each side (Linux), and
 * the 1-worker/raw ratio as the median of runs paired back to back (robust to a machine whose load drifts).
 *
 * Both sides are measured warm: before its runs, each (the raw pair, each cluster) moves the data
 * --warmup-passes times. V8 compiles the few hundred functions of the shard path (grpc-js, protobuf,
 * Arrow, the scheduler) over the first several hundred MB, on the same two cores, while the raw path
 * has a handful; the first pass of the 1-worker cluster is printed as the cold figure.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { RecordBatch } from 'apache-arrow';
import { LOCAL_WORKER_NODE_FLAGS, LocalBackend, readShardPayloads, startCluster } from '../coordinator/cluster/index.js';
import { runShards, type ShardTask } from '../coordinator/schedule/index.js';
import { MAX_MESSAGE_BYTES, channelOptions, createServer, grpc, raiseSessionWindows } from '../proto/index.js';
import { channelCredentials, serverCredentials } from '../proto/credentials.js';
import { ECHO_ENV } from '../worker/echo-engine.js';
import { mulberry32 as seeded } from '../core/random.js';
import { sampleBatch, writeShardFile } from '../test/helpers/sample-shards.js';

const MAX_LENGTH = 50;
const ACK = Buffer.alloc(16);

const identity = (b: Buffer) => b;
const RAW_SERVICE: grpc.ServiceDefinition = {
  Echo: {
    path: '/nextbuy.bench.Raw/Echo',
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

// ---- raw grpc-js server (runs in a child process) -----------------------------------------------

async function rawServer(): Promise<void> {
  const server = createServer(); // the same options and HTTP/2 windows as a worker's server
  server.addService(RAW_SERVICE, {
    Echo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', () => call.write(ACK));
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', serverCredentials(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  raiseSessionWindows(server);
  process.stdout.write(`${port}\n`);
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

async function startRawServer(): Promise<{ address: string; pid: number; stop: () => void }> {
  // The same V8 flags as the local workers it stands in for, so both sides of the comparison run alike.
  const child = spawn(process.execPath, [...LOCAL_WORKER_NODE_FLAGS, '--import', import.meta.resolve('tsx'), fileURLToPath(import.meta.url), '--raw-server'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await new Promise<string>((resolve, reject) => {
    child.stdout!.setEncoding('utf8');
    child.stdout!.once('data', (d: string) => resolve(d.trim()));
    child.once('exit', (code) => reject(new Error(`raw server exited (${code})`)));
  });
  return { address: `127.0.0.1:${port}`, pid: child.pid!, stop: () => child.stdin!.end() };
}

/** Streams `count` messages of `size` bytes; resolves with seconds until the last ack. */
async function rawRun(address: string, size: number, count: number): Promise<number> {
  const Client = grpc.makeGenericClientConstructor(RAW_SERVICE, 'Raw');
  const client = new Client(address, channelCredentials(), channelOptions());
  const message = Buffer.alloc(size, 7); // one buffer sent over and over: the most favourable case for the baseline
  try {
    const call = (client as unknown as { Echo: () => grpc.ClientDuplexStream<Buffer, Buffer> }).Echo();
    const start = process.hrtime.bigint();
    const done = new Promise<void>((resolve, reject) => {
      let acks = 0;
      call.on('data', () => {
        if (++acks === count) resolve();
      });
      call.on('error', reject);
    });
    for (let i = 0; i < count; i++) {
      if (!call.write(message)) await new Promise((r) => call.once('drain', r));
    }
    call.end();
    await done;
    return Number(process.hrtime.bigint() - start) / 1e9;
  } finally {
    client.close();
  }
}

/** CPU milliseconds (user + system) a process has used so far, from /proc on Linux; null elsewhere. */
function cpuMsOf(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return null;
  }
}
const CLOCK_TICKS = 100; // USER_HZ on Linux

/** Runs `f` and returns its result with the CPU ms it cost this process and the `others`. */
async function measured<T>(others: number[], f: () => Promise<T>): Promise<{ value: T; selfCpuMs: number; othersCpuMs: number | null }> {
  const before = others.map(cpuMsOf);
  const self = process.cpuUsage();
  const value = await f();
  const used = process.cpuUsage(self);
  const after = others.map(cpuMsOf);
  const othersCpuMs = before.some((b) => b === null) ? null : after.reduce<number>((n, a, i) => n + (a ?? 0) - before[i]!, 0);
  return { value, selfCpuMs: (used.user + used.system) / 1000, othersCpuMs };
}

// ---- shard files ------------------------------------------------------------------------------


async function writeShards(dir: string, shards: number, customers: number, batchRows: number): Promise<ShardTask[]> {
  const random = seeded(42);
  const tasks: ShardTask[] = [];
  for (let s = 0; s < shards; s++) {
    const batches: RecordBatch[] = [];
    for (let at = 0; at < customers; at += batchRows) {
      const ids = Array.from({ length: Math.min(batchRows, customers - at) }, (_, i) => `s${s}-c${at + i}`);
      batches.push(sampleBatch(ids, random, MAX_LENGTH, { minLength: 1, vocabulary: 5000, valueScale: 12 }));
    }
    const file = path.join(dir, `shard-${s}.arrows`);
    await writeShardFile(file, batches);
    tasks.push({ id: `shard-${s}`, file });
  }
  return tasks;
}

async function payloadStats(tasks: ShardTask[]): Promise<{ messages: number; bytes: number }> {
  let messages = 0;
  let bytes = 0;
  for (const t of tasks) {
    for await (const p of readShardPayloads(t.file, { maxPayloadBytes: MAX_MESSAGE_BYTES })) {
      messages++;
      bytes += p.bytes.length;
    }
  }
  return { messages, bytes };
}

// ---- shard transport ------------------------------------------------------------------------------

interface Figures {
  seconds: number;
  bytes: number;
  sequences: number;
  /** CPU ms per MB moved: the sending side (coordinator / raw client) and the receiving side (workers / raw server). */
  senderCpuMsPerMB: number;
  receiverCpuMsPerMB: number | null;
}

const SCORE_WORK = { kind: 'score' as const, modelVersions: ['bench-v1'], products: [], onResult: () => {} };

async function startBenchCluster(workers: number, env: Record<string, string>) {
  const backend = new LocalBackend({ engine: 'echo', env });
  const cluster = await startCluster({ backend, runId: `bench-${workers}`, account: 'bench', workers, heartbeatTimeoutMs: 30_000, minWorkers: workers });
  return { cluster, pids: backend.processes().map((p) => p.pid) };
}

async function transportRun(c: Awaited<ReturnType<typeof startBenchCluster>>, tasks: ShardTask[]): Promise<Figures> {
  const m = await measured(c.pids, () => runShards(c.cluster.pool, tasks, SCORE_WORK, { heartbeatTimeoutMs: 30_000 }));
  const mbs = m.value.bytesSent / 1e6;
  return {
    seconds: m.value.ms / 1000,
    bytes: m.value.bytesSent,
    sequences: m.value.rowsSent,
    senderCpuMsPerMB: m.selfCpuMs / mbs,
    receiverCpuMsPerMB: m.othersCpuMs === null ? null : m.othersCpuMs / mbs,
  };
}

async function rawMeasured(raw: { address: string; pid: number }, size: number, count: number): Promise<Figures> {
  const m = await measured([raw.pid], () => rawRun(raw.address, size, count));
  const mbs = (size * count) / 1e6;
  return {
    seconds: m.value,
    bytes: size * count,
    sequences: 0,
    senderCpuMsPerMB: m.selfCpuMs / mbs,
    receiverCpuMsPerMB: m.othersCpuMs === null ? null : m.othersCpuMs / mbs,
  };
}

const best = (runs: Figures[]) => runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// ---- main -----------------------------------------------------------------------------------------

const mb = (bytes: number, seconds: number) => bytes / 1e6 / seconds;
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'raw-server': { type: 'boolean', default: false },
      shards: { type: 'string' },
      customers: { type: 'string', default: '24576' },
      'batch-rows': { type: 'string', default: '4096' },
      workers: { type: 'string', default: '1,2,4' },
      repeat: { type: 'string', default: '7' },
      'warmup-passes': { type: 'string', default: '8' },
      densify: { type: 'boolean', default: false },
    },
  });
  if (values['raw-server']) return rawServer();
  const workerCounts = values.workers!.split(',').map(Number);
  const shards = values.shards === undefined ? Math.max(16, 4 * Math.max(...workerCounts)) : Number(values.shards);
  const customers = Number(values.customers);
  const batchRows = Number(values['batch-rows']);
  const repeat = Number(values.repeat);
  const warmupPasses = Number(values['warmup-passes']);

  const cpus = os.cpus();
  console.log(`machine: ${cpus[0]?.model ?? 'unknown cpu'}, ${cpus.length} cores, ${fmt(os.totalmem() / 2 ** 30, 1)} GiB, node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-bench-transport-'));
  try {
    const tasks = await writeShards(dir, shards, customers, batchRows);
    const payloads = await payloadStats(tasks);
    const messageBytes = Math.round(payloads.bytes / payloads.messages);
    console.log(
      `data: ${shards} shards × ${fmt(customers)} customers (sequences ≤ ${MAX_LENGTH} events, 3 token + 2 float lists), ` +
        `${payloads.messages} payloads of ~${fmt(messageBytes / 1e6, 2)} MB (${fmt(payloads.messages / shards, 1)} per shard), ${fmt(payloads.bytes / 1e6, 1)} MB in all`,
    );

    const env: Record<string, string> = values.densify ? { [ECHO_ENV.touchAll]: '1' } : {};
    const raw = await startRawServer();
    const rawRuns: Figures[] = [];
    let cold: Figures | null = null;
    const ratios: number[] = [];
    const rows: string[] = [];
    const cpu = (f: Figures) => `${fmt(f.senderCpuMsPerMB, 2)} | ${f.receiverCpuMsPerMB === null ? 'n/a' : fmt(f.receiverCpuMsPerMB, 2)}`;
    try {
      for (let pass = 0; pass < Math.max(1, warmupPasses); pass++) await rawRun(raw.address, messageBytes, payloads.messages);
      for (const n of workerCounts) {
        const c = await startBenchCluster(n, env);
        try {
          const first = await transportRun(c, tasks);
          if (n === 1) cold = first;
          for (let pass = 1; pass < warmupPasses; pass++) await transportRun(c, tasks);
          const runs: Figures[] = [];
          for (let r = 0; r < repeat; r++) {
            // 1 worker: each transport run is paired with a raw run just before it, so both see the same load.
            if (n === 1) rawRuns.push(await rawMeasured(raw, messageBytes, payloads.messages));
            runs.push(await transportRun(c, tasks));
            if (n === 1) ratios.push(rawRuns.at(-1)!.seconds / runs.at(-1)!.seconds);
          }
          const f = best(runs);
          rows.push(`| ${n} | ${fmt(f.seconds, 2)} s | ${fmt(mb(f.bytes, f.seconds))} | ${fmt(f.sequences / f.seconds)} | ${cpu(f)} |`);
        } finally {
          await c.cluster.stop();
        }
      }
    } finally {
      raw.stop();
    }
    if (rawRuns.length > 0) {
      const r = best(rawRuns);
      console.log(
        `\nraw grpc-js baseline (bytes messages of the same size, 1 stream, 2 processes; server node flags as the workers': ${LOCAL_WORKER_NODE_FLAGS.join(' ') || 'none'}): ` +
          `${fmt(mb(r.bytes, r.seconds))} MB/s; CPU ms/MB client ${cpu(r).replace(' | ', ', server ')}`,
      );
    }
    console.log(`\nshard transport (scheduler → echo workers: Arrow decode, ${values.densify ? 'dense batch (all columns), ' : 'customer ids, '}score column, Arrow results back)`);
    console.log('| workers | time | payload MB/s | sequences/s | coordinator CPU ms/MB | workers CPU ms/MB |');
    console.log('|---|---|---|---|---|---|');
    for (const r of rows) console.log(r);
    if (cold) {
      console.log(
        `\ncold: the first pass of a fresh 1-worker cluster (before V8 has compiled the shard path): ${fmt(mb(cold.bytes, cold.seconds))} MB/s; ` +
          `figures above after ${warmupPasses} warm-up passes (${fmt((warmupPasses * payloads.bytes) / 1e6)} MB) on each side`,
      );
    }
    if (ratios.length > 0) {
      const ratio = median(ratios);
      console.log(`\n1 worker vs raw baseline, median of ${ratios.length} paired runs: ${fmt(100 * ratio)} % (goal ≥ 80 %) → ${ratio >= 0.8 ? 'met' : 'NOT met'}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
