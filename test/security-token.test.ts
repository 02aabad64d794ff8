/**
 * The per-run token: a worker started for another run or another account cannot join this run, never
 * receives a shard, and its refusal is logged without any secret. The run it tried to join goes on.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LocalBackend, startCluster, type Cluster } from '../coordinator/cluster/index.js';
import { EXIT_CODES } from '../core/errors.js';
import { registrationProof } from '../proto/handshake.js';
import { encodeBatches } from '../proto/shard-batch.js';
import { expectEveryCustomerOnce, rawScore, sampleBatch, scoreAll, seeded, writeSampleShards, type SampleShards } from './helpers/cluster.js';
import { spawnStrayWorker } from './helpers/tls.js';

const RUN = 'acme-2017-12-02';
const TOKEN = 'acme-run-token-6f1c2d';
const OTHER_TOKEN = 'globex-run-token-93ab07';

let sample: SampleShards;
beforeAll(async () => {
  sample = await writeSampleShards({ shards: 4, customersPerShard: 100, batchRows: 50, seed: 31 });
});
afterAll(() => sample?.cleanup());

interface Logged {
  event: string;
  fields?: Record<string, unknown>;
}

async function withRun<T>(fn: (c: Cluster, logged: Logged[], workerLines: string[]) => Promise<T>): Promise<T> {
  const logged: Logged[] = [];
  const workerLines: string[] = [];
  const cluster = await startCluster({
    backend: new LocalBackend({ engine: 'echo', stopGraceMs: 5_000, onOutput: (_w, _s, line) => void workerLines.push(line) }),
    runId: RUN,
    account: 'acme',
    token: TOKEN,
    workers: 2,
    minWorkers: 2,
    heartbeatTimeoutMs: 1_500,
    startTimeoutMs: 60_000,
    log: (event, fields) => void logged.push({ event, fields }),
  });
  try {
    return await fn(cluster, logged, workerLines);
  } finally {
    await cluster.stop();
  }
}

/** Every secret (and value derived from one) that must never reach a log line. */
function secrets(): string[] {
  return [TOKEN, OTHER_TOKEN, registrationProof(TOKEN, RUN, 'x', 'y', Buffer.alloc(40)).toString('base64').slice(0, 12)];
}

/** What a refused worker is told: the same words whichever was wrong, naming nothing of this run. */
const TOLD = /registration refused: the worker does not hold this run's token, or was started for another run/;
const attempts = [
  { what: "a worker of another account's run (its own run id and token)", runId: 'globex-2017-12-02', account: 'globex', token: OTHER_TOKEN, logged: /it asked for run globex-2017-12-02, not acme-2017-12-02/ },
  { what: 'a worker claiming this run id without its token', runId: RUN, account: 'globex', token: OTHER_TOKEN, logged: /registration proof does not match/ },
];

for (const a of attempts) {
  test(`${a.what} is refused at Register, gets no shard, and the refusal is logged without secrets`, async () => {
    await withRun(async (cluster, logged, workerLines) => {
      const stray = spawnStrayWorker({ NEXTBUY_COORDINATOR: cluster.coordinatorAddress, NEXTBUY_RUN_ID: a.runId, NEXTBUY_ACCOUNT: a.account, NEXTBUY_TOKEN: a.token }, 'stray');
      try {
        expect(await stray.exited).toBe(EXIT_CODES.SECURITY);
        expect(stray.stderr()).toMatch(TOLD);
        // No hint to strangers: the right run id stays here (the stray's own lines carry the run id it was started with).
        const told = stray.lines.find((l) => l.event === 'failed');
        expect(String(told?.error)).toMatch(TOLD);
        expect(String(told?.error)).not.toContain(RUN);
        const refusal = logged.find((l) => l.event === 'rejected');
        expect(String(refusal?.fields?.reason)).toMatch(a.logged);
        expect(refusal?.fields?.name).toBe('stray');

        // The run goes on with its own workers only, and the stray saw no shard.
        const run = await scoreAll(cluster.pool, sample.shards);
        expectEveryCustomerOnce(run, sample.customers, sample.shards);
        expect(cluster.pool.workers().map((w) => w.name).sort()).toEqual(['local-0', 'local-1']);
        expect(stray.lines.filter((l) => /score|training/.test(String(l.event)))).toEqual([]);

        const everything = JSON.stringify(logged) + workerLines.join('\n') + stray.stderr() + JSON.stringify(stray.lines) + cluster.pool.recentRejections().join('\n');
        for (const s of secrets()) expect(everything).not.toContain(s);
      } finally {
        stray.kill();
      }
    });
  });
}

test("a caller holding another run's token gets no data from this run's worker", async () => {
  await withRun(async (cluster, _logged, workerLines) => {
    const worker = cluster.pool.workers()[0]!;
    const header = { shard_id: 'stolen', attempt: 1, model_versions: ['m'], products: ['any'] };
    const batch = sampleBatch(['x1', 'x2'], seeded(4));
    const r = await rawScore(worker.address, [{ header }, { arrow: encodeBatches([batch]) }], { token: OTHER_TOKEN, runId: RUN, account: 'acme' });
    expect(r.error?.code).toBe(16); // UNAUTHENTICATED
    expect(r.error?.details).toMatch(/does not hold this run's token/);
    expect(r.replies).toEqual([]);
    expect(workerLines.some((l) => l.includes('"stolen"'))).toBe(false);
  });
});
