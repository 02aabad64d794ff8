/**
 * Issue 22 point 4: bounded before authenticated. Many HTTP/2 streams without credentials, each
 * declaring a large message and sending all of it but the last byte, against a real worker process
 * (an authenticated method and the pre-auth handshake) and against the coordinator's registration
 * server: the servers read none of it (or 16 KiB), their RSS stays within a bound far below what was
 * sent, and they keep serving the real coordinator and its workers.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:http2';
import { expect, test } from 'vitest';
import { createServer, grpc, shutdownServer, workerService, type HealthReply } from '../proto/index.js';
import { createServerGuard } from '../proto/server-guard.js';
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

test('a handshake stream that withholds its last byte is ended at the pre-auth deadline, and a connection that never authenticates is closed', async () => {
  const guard = createServerGuard({
    preAuthMethods: ['/nextbuy.v1.Worker/Hello'],
    authenticate: () => ({ code: grpc.status.UNAUTHENTICATED, details: 'no session' }),
    preAuthTimeoutMs: 300,
    maxConnections: 2,
    unauthenticatedConnectionMs: 1_500,
  });
  const server = createServer(undefined, guard.serverOptions);
  let helloCalls = 0;
  server.addService(workerService, { Hello: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => void (helloCalls++, cb(null, {})) });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  guard.watchConnections(server);
  try {
    const address = `127.0.0.1:${port}`;
    // Small enough to be read, never complete: all but its last byte arrive, then nothing.
    const slow = await floodWithheldStreams({ address, path: '/nextbuy.v1.Worker/Hello', connections: 2, streamsPerConnection: 4, messageBytes: 1024 });
    expect(slow.open).toBe(8);
    await slow.allClosed; // ended by the server: the test would hang (and time out) otherwise
    expect(slow.statuses).toEqual(Array(8).fill(grpc.status.DEADLINE_EXCEEDED));
    slow.close();
    expect(helloCalls).toBe(0);

    // Connections that call nothing: beyond maxConnections closed at once, the others after unauthenticatedConnectionMs.
    const idle = Array.from({ length: 3 }, () => connect(`http://${address}`).on('error', () => {}));
    await Promise.all(idle.map((s) => new Promise((resolve) => s.once('close', resolve))));
  } finally {
    await shutdownServer(server);
  }
});
