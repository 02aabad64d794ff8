/**
 * A worker's /healthz, /readyz and /metrics (worker/health.ts), probed over HTTP on a real worker
 * process the way the kubelet and Prometheus do: not ready while it has no coordinator to register
 * with, ready once registered, counting the shards it scores.
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startCluster, type ClusterBackend } from '../coordinator/cluster/index.js';
import { expectEveryCustomerOnce, scoreAll, writeSampleShards, type SampleShards } from './helpers/cluster.js';
import { spawnStrayWorker } from './helpers/tls.js';

const RUN = 'acme-2024-05-11';
const TOKEN = 'acme-health-token-5b21';

let sample: SampleShards;
beforeAll(async () => {
  sample = await writeSampleShards({ shards: 3, customersPerShard: 50, batchRows: 25, seed: 19 });
});
afterAll(() => sample?.cleanup());

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

/** GET until `until` holds (the worker's phases change under us); fails with the last answer. */
async function poll(port: number, path: string, until: (r: { status: number; body: string }) => boolean): Promise<{ status: number; body: string }> {
  let last: { status: number; body: string } | Error = new Error('no answer yet');
  for (let i = 0; i < 600; i++) {
    try {
      last = await get(port, path);
      if (until(last)) return last;
    } catch (e) {
      last = e as Error;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`GET ${path} never matched; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
}

/** Workers started by hand (the test), as pods are: the cluster only listens for them. */
const noLauncher: ClusterBackend = { kind: 'static', start: async () => {}, failures: () => new Promise<never>(() => {}), stop: async () => {} };

test('a worker is live but not ready before it registers, ready after, and /metrics counts what it scored', async () => {
  const [metricsPort, registrationPort] = [await freePort(), await freePort()];
  // The coordinator is not listening yet: the worker keeps retrying its registration.
  const worker = spawnStrayWorker(
    { NEXTBUY_METRICS_PORT: String(metricsPort), NEXTBUY_COORDINATOR: `127.0.0.1:${registrationPort}`, NEXTBUY_RUN_ID: RUN, NEXTBUY_ACCOUNT: 'acme', NEXTBUY_TOKEN: TOKEN },
    'pod-0',
  );
  try {
    await worker.waitFor('listening');
    const before = await poll(metricsPort, '/readyz', () => true);
    expect(before.status).toBe(503);
    expect(before.body).toMatch(/^not ready: (starting|registering)/);
    const live = await get(metricsPort, '/healthz');
    expect(live.status).toBe(200);
    expect(live.body).toMatch(/^ok/);

    const cluster = await startCluster({ backend: noLauncher, runId: RUN, account: 'acme', token: TOKEN, workers: 1, minWorkers: 1, heartbeatTimeoutMs: 1_500, startTimeoutMs: 60_000, listenPort: registrationPort });
    try {
      const after = await poll(metricsPort, '/readyz', (r) => r.status === 200);
      expect(after.body).toBe('ok: ready\n');

      const run = await scoreAll(cluster.pool, sample.shards);
      expectEveryCustomerOnce(run, sample.customers, sample.shards);
      const scraped = await get(metricsPort, '/metrics');
      expect(scraped.status).toBe(200);
      expect(scraped.body).toMatch(new RegExp(`^nextbuy_shards_done_total ${sample.shards.length}$`, 'm'));
      expect(scraped.body).toMatch(new RegExp(`^nextbuy_sequences_total ${sample.customers.length}$`, 'm'));
      expect(scraped.body).toMatch(/^process_resident_memory_bytes \d+/m);
    } finally {
      await cluster.stop();
    }
    expect(await worker.exited).toBe(0);
  } finally {
    worker.kill();
  }
}, 60_000);
