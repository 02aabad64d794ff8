import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { StaticBackend, startCluster } from '../coordinator/cluster/index.js';
import { ClusterError } from '../core/errors.js';
import { WORKER_ENV } from '../proto/index.js';
import { expectEveryCustomerOnce, scoreAll, writeSampleShards, type SampleShards } from './helpers/cluster.js';

const WORKER_MAIN = fileURLToPath(new URL('../worker/main.ts', import.meta.url));
const TOKEN = 'static-token-abcdef';

/** A worker started by hand, as an operator would: no coordinator to register with, only the token. */
async function startStandaloneWorker(token: string): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), WORKER_MAIN, '--engine', 'echo', '--name', 'standalone'], {
    env: { ...process.env, [WORKER_ENV.token]: token, [WORKER_ENV.coordinator]: '', [WORKER_ENV.runId]: '', NEXTBUY_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  const address = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      buffered += chunk;
      const ready = buffered.split('\n').find((l) => l.includes('"event":"ready"'));
      if (ready) resolve((JSON.parse(ready) as { address: string }).address);
    });
    child.once('exit', (code) => reject(new Error(`standalone worker exited with ${code}`)));
  });
  return { child, address };
}

let sample: SampleShards;
let worker: { child: ChildProcess; address: string };
beforeAll(async () => {
  sample = await writeSampleShards({ shards: 4, customersPerShard: 100, seed: 91 });
  worker = await startStandaloneWorker(TOKEN);
});
afterAll(async () => {
  if (worker.child.exitCode === null) {
    worker.child.kill('SIGTERM');
    await new Promise((r) => worker.child.once('exit', r));
  }
  await sample.cleanup();
});

test('static addresses: the coordinator registers a running worker on its behalf and scores on it', async () => {
  const cluster = await startCluster({ backend: new StaticBackend([worker.address]), runId: 'run-static', account: 'test', token: TOKEN, workers: 1, heartbeatTimeoutMs: 1_500 });
  try {
    expect(cluster.pool.workers().map((w) => w.address)).toEqual([worker.address]);
    const run = await scoreAll(cluster.pool, sample.shards);
    expectEveryCustomerOnce(run, sample.customers, sample.shards);
  } finally {
    // Drains the worker: a static worker leaves with the run, as a pod would.
    await cluster.stop();
  }
  await new Promise((r) => (worker.child.exitCode === null ? worker.child.once('exit', r) : r(null)));
  expect(worker.child.exitCode).toBe(0);
});

test('static addresses: a worker without this run\'s token is refused at Hello and the cluster does not start', async () => {
  const other = await startStandaloneWorker('another-token');
  try {
    const start = startCluster({
      backend: new StaticBackend([other.address], { registerTimeoutMs: 5_000 }),
      runId: 'run-static-2',
      account: 'test',
      token: TOKEN,
      workers: 1,
      heartbeatTimeoutMs: 1_500,
      startTimeoutMs: 20_000,
    });
    await expect(start).rejects.toThrow(ClusterError);
    await expect(start).rejects.toThrow(/no static worker could join: .*answered Hello without proof of this run's token .*nothing sent to it/);
  } finally {
    other.child.kill('SIGTERM');
    await new Promise((r) => other.child.once('exit', r));
  }
});
