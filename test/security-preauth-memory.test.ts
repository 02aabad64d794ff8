/**
 * Issue 22 point 4: bounded before authenticated. Many HTTP/2 streams without credentials, each
 * declaring a large message and sending all of it but the last byte, against a real worker process
 * (an authenticated method and the pre-auth handshake) and against the coordinator's registration
 * server: the servers read none of it (or 16 KiB), their RSS stays within a bound far below what was
 * sent, and they keep serving the real coordinator and its workers.
 */
import { readFileSync } from 'node:fs';
import { expect, test } from 'vitest';
import { type HealthReply } from '../proto/index.js';
import { expectEveryCustomerOnce, rawUnary, scoreAll, withCluster, writeSampleShards } from './helpers/cluster.js';
import { floodWithheldStreams } from './helpers/rogue.js';

const MiB = 1024 * 1024;
/** Per attack: 4 connections × 8 streams × 8 MiB = 256 MiB offered. */
const ATTACK = { connections: 4, streamsPerConnection: 8, messageBytes: 8 * MiB };
/** What a server may grow by under one attack: a quarter of what is offered. */
const BOUND = 64 * MiB;

function rssOf(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

test('a worker buffers nothing of unauthenticated streams (an authenticated method, the handshake) and keeps serving', async () => {
  const sample = await writeSampleShards({ shards: 2, customersPerShard: 50, seed: 3 });
  try {
    await withCluster({ workers: 1 }, async ({ pool, process: proc }) => {
      const worker = pool.workers()[0]!;
      const pid = proc('local-0').child.pid!;
      for (const path of ['/nextbuy.v1.Worker/LoadModel', '/nextbuy.v1.Worker/Hello']) {
        const before = rssOf(pid);
        const flood = await floodWithheldStreams({ address: worker.address, path, ...ATTACK });
        try {
          const grown = rssOf(pid) - before;
          expect({ path, grownUnderBound: grown < BOUND, ended: flood.ended }).toEqual({ path, grownUnderBound: true, ended: ATTACK.connections * ATTACK.streamsPerConnection });
          expect(flood.bytesSent).toBeLessThan(BOUND);
          // The real coordinator's session is untouched: heartbeats and calls go on during the attack.
          expect((await rawUnary<HealthReply>(worker.address, 'Health', {})).state).toBe('SERVING');
        } finally {
          flood.close();
        }
      }
      expect(pool.workers().map((w) => w.name)).toEqual(['local-0']);
      expectEveryCustomerOnce(await scoreAll(pool, sample.shards), sample.customers, sample.shards);
    });
  } finally {
    await sample.cleanup();
  }
});

test("the coordinator's registration server reads at most a small message per stream, keeps no memory, and still admits workers", async () => {
  await withCluster({ workers: 1, minWorkers: 1 }, async ({ cluster, backend, waitForReady }) => {
    const before = process.memoryUsage().rss;
    const flood = await floodWithheldStreams({ address: cluster.coordinatorAddress, path: '/nextbuy.v1.Coordinator/Register', ...ATTACK });
    try {
      expect(process.memoryUsage().rss - before).toBeLessThan(BOUND);
      expect(flood.ended).toBe(ATTACK.connections * ATTACK.streamsPerConnection);
      expect(flood.bytesSent).toBeLessThan(BOUND);
    } finally {
      flood.close();
    }
    // A worker started now registers through the same server.
    backend.spawnWorker();
    await waitForReady(2);
  });
});
