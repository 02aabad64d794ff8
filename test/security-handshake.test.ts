/**
 * Issue 22, points 1, 2 and 7, played over real gRPC on 127.0.0.1 by peers without the token: a rogue
 * that uses a worker as a signing oracle to register, or relays the handshake to a real worker to be
 * admitted in its place; a fake server at a static address that keeps what the coordinator sends it
 * and replays it to a static worker of another run. None of them gets a call from the coordinator or
 * an answer from a worker beyond the handshake, refusals name nothing of the run, and the runs go on.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { StaticBackend, startCluster } from '../coordinator/cluster/index.js';
import { ClusterError, SecurityError } from '../core/errors.js';
import { channelCredentials } from '../proto/credentials.js';
import {
  CALL_AUTH_METADATA_KEY,
  RegistrationChallenges,
  SESSION_METADATA_KEY,
  SessionSigner,
  SessionTable,
  coordinatorHelloProof,
  newNonce,
  registrationProof,
  workerHelloProof,
} from '../proto/handshake.js';
import { createWorkerClient, grpc } from '../proto/index.js';
import { RUN_ID, expectEveryCustomerOnce, scoreAll, withCluster, writeSampleShards, type SampleShards } from './helpers/cluster.js';
import { registerWithWorkerAsOracle, startRogueWorker, type RogueWorker } from './helpers/rogue.js';
import { sessionWith, signed } from './helpers/session.js';
import { spawnStrayWorker } from './helpers/tls.js';

const TOKEN = 'shared-static-token-5d2e';

let sample: SampleShards;
beforeAll(async () => {
  sample = await writeSampleShards({ shards: 3, customersPerShard: 60, seed: 17 });
});
afterAll(() => sample?.cleanup());

/** One unary call with the given metadata; resolves with its status code. */
function callWith(address: string, rpc: 'Health' | 'Drain' | 'LoadModel', md: grpc.Metadata, request: unknown): Promise<grpc.status> {
  const client = createWorkerClient(address, channelCredentials(null));
  const method = client[rpc] as unknown as (r: unknown, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void;
  return new Promise((resolve) =>
    method.call(client, request, md, { deadline: Date.now() + 5_000 }, (e) => {
      client.close();
      resolve(e ? e.code : grpc.status.OK);
    }),
  );
}

/** What the rogue was sent beyond the handshake (shards, models, anything signed). */
function beyondHandshake(rogue: RogueWorker) {
  return rogue.received.filter((c) => c.rpc !== 'Hello' || SESSION_METADATA_KEY in c.metadata || CALL_AUTH_METADATA_KEY in c.metadata);
}

test('a rogue can neither use a worker as a signing oracle to register nor relay its handshake to be admitted, and gets no shard', async () => {
  await withCluster({ workers: 1 }, async ({ cluster, pool }) => {
    const real = pool.workers()[0]!.address;
    const rogue = await startRogueWorker({ relayTo: real });
    try {
      // The worker answers Hello only for its own address; an answer for that address is no registration proof.
      const forRogue = await registerWithWorkerAsOracle({ worker: real, coordinator: cluster.coordinatorAddress, runId: RUN_ID, account: 'test', rogueAddress: rogue.address });
      expect(forRogue.hello).toMatchObject({ code: grpc.status.PERMISSION_DENIED });
      const forReal = await registerWithWorkerAsOracle({
        worker: real,
        coordinator: cluster.coordinatorAddress,
        runId: RUN_ID,
        account: 'test',
        rogueAddress: rogue.address,
        helloAddress: real,
      });
      expect(forReal.hello).toHaveProperty('proof');
      for (const r of [forRogue, forReal]) {
        expect(r.register).toMatchObject({ code: grpc.status.PERMISSION_DENIED });
        expect((r.register as grpc.ServiceError).details).not.toContain(RUN_ID);
      }

      // Dialled anyway (as a static address would be), the rogue relays the handshake: the worker refuses a Hello for another address.
      await expect(pool.admit(rogue.address, 'rogue')).rejects.toThrow(SecurityError);
      expect(pool.workers().map((w) => w.name)).toEqual(['local-0']);

      expectEveryCustomerOnce(await scoreAll(pool, sample.shards), sample.customers, sample.shards);
      expect(beyondHandshake(rogue)).toEqual([]);
    } finally {
      await rogue.close();
    }
  });
});

test('a fake server at a static address captures nothing that opens a worker of another run; a static worker serves one run at a time', async () => {
  // A static worker shared by two accounts' runs (same NEXTBUY_TOKEN), told the address it is reached at.
  const worker = spawnStrayWorker({ NEXTBUY_TOKEN: TOKEN, NEXTBUY_ADVERTISE_HOST: '127.0.0.1' }, 'shared');
  const fake = await startRogueWorker();
  try {
    const address = String((await worker.waitFor('ready')).address);
    const runA = await startCluster({ backend: new StaticBackend([address]), runId: 'acme-a', account: 'acme', token: TOKEN, workers: 1, heartbeatTimeoutMs: 1_500 });
    try {
      // Run B's coordinator dials the fake (one of its cluster.addresses): it sends a nonce, nothing derived from the token.
      const runB = startCluster({
        backend: new StaticBackend([fake.address], { registerTimeoutMs: 3_000 }),
        runId: 'globex-b',
        account: 'globex',
        token: TOKEN,
        workers: 1,
        heartbeatTimeoutMs: 1_500,
        startTimeoutMs: 10_000,
      });
      await expect(runB).rejects.toThrow(ClusterError);
      expect(fake.received.map((c) => c.rpc)).toEqual(['Hello']);
      expect(beyondHandshake(fake)).toEqual([]);

      // Everything the fake kept, replayed to the worker, opens nothing: Health, LoadModel and Drain are refused.
      const captured = new grpc.Metadata();
      for (const [k, v] of Object.entries(fake.received[0]!.metadata)) captured.set(k, v);
      expect(await callWith(address, 'Health', captured, {})).toBe(grpc.status.UNAUTHENTICATED);
      expect(await callWith(address, 'LoadModel', captured, { model_version: 'm', files: {} })).toBe(grpc.status.UNAUTHENTICATED);
      expect(await callWith(address, 'Drain', captured, { reason: 'replayed' })).toBe(grpc.status.UNAUTHENTICATED);

      // A call seen on the wire of run A's session is good once, for its own method only.
      const session = await sessionWith(address, { token: TOKEN, runId: 'acme-a', account: 'acme' });
      const seen = signed(session, 'Health');
      expect(await callWith(address, 'Health', seen, {})).toBe(grpc.status.OK);
      expect(await callWith(address, 'Health', seen, {})).toBe(grpc.status.UNAUTHENTICATED);
      expect(await callWith(address, 'Drain', signed(session, 'Health'), { reason: 'other method' })).toBe(grpc.status.UNAUTHENTICATED);

      // Another account's coordinator holding the same token cannot take the worker while run A holds it.
      const runC = startCluster({ backend: new StaticBackend([address]), runId: 'globex-c', account: 'globex', token: TOKEN, workers: 1, heartbeatTimeoutMs: 1_500, startTimeoutMs: 10_000 });
      await expect(runC).rejects.toThrow(/this worker serves another run; it is free again once that run drains it/);
      await expect(runC).rejects.not.toThrow(/acme/);

      expectEveryCustomerOnce(await scoreAll(runA.pool, sample.shards), sample.customers, sample.shards);
      expect(worker.lines.filter((l) => l.event === 'score-start').length).toBe(sample.shards.length);
    } finally {
      await runA.stop(); // drains the worker: it exits, and with it run A's hold
    }
    expect(await worker.exited).toBe(0);
  } finally {
    worker.kill();
    await fake.close();
  }
});

test('proofs are per purpose, challenges expire, and a session MAC opens one call of one method once', () => {
  const t = {
    runId: 'r',
    account: 'a',
    address: '127.0.0.1:1',
    coordinatorNonce: newNonce(),
    workerNonce: newNonce(),
    sessionId: Buffer.alloc(16, 1),
    coordinatorCert: Buffer.alloc(0),
    workerCert: Buffer.alloc(0),
  };
  const challenges = new RegistrationChallenges(60_000);
  const challenge = challenges.issue(1_000_000);
  const proofs = [workerHelloProof(TOKEN, t), coordinatorHelloProof(TOKEN, t), registrationProof(TOKEN, 'r', '127.0.0.1:1', 'w', challenge)];
  expect(new Set(proofs.map((p) => p.toString('hex'))).size).toBe(3);
  expect(challenges.valid(challenge, 1_000_000 + 59_000)).toBe(true);
  expect(challenges.valid(challenge, 1_000_000 + 61_000)).toBe(false);
  expect(new RegistrationChallenges().valid(challenge, 1_000_000)).toBe(false); // another coordinator's
  const forged = Buffer.from(challenge);
  forged.writeBigUInt64BE(BigInt(2_000_000));
  expect(challenges.valid(forged, 2_000_000)).toBe(false);

  const table = new SessionTable({ token: TOKEN });
  const begun = table.begin({ runId: 'r', account: 'a', address: 'x:1', coordinatorNonce: t.coordinatorNonce, coordinatorCert: Buffer.alloc(0), workerCert: Buffer.alloc(0) });
  const transcript = table.pendingHello(begun.sessionId, Buffer.alloc(0))!;
  expect(table.confirm(transcript, workerHelloProof(TOKEN, transcript))).toBeNull(); // the worker's own proof reflected back
  expect(table.pendingHello(begun.sessionId, Buffer.alloc(0))).toBeNull(); // one try per handshake

  const again = table.begin({ runId: 'r', account: 'a', address: 'x:1', coordinatorNonce: newNonce(), coordinatorCert: Buffer.alloc(0), workerCert: Buffer.alloc(0) });
  const t2 = table.pendingHello(again.sessionId, Buffer.alloc(0))!;
  const session = table.confirm(t2, coordinatorHelloProof(TOKEN, t2))!;
  const signer = new SessionSigner(session.id, session.key);
  const md = signer.sign(new grpc.Metadata(), '/nextbuy.v1.Worker/Health');
  expect(table.verify(md, '/nextbuy.v1.Worker/Drain', Buffer.alloc(0))).toBe('bad proof');
  expect(table.verify(md, '/nextbuy.v1.Worker/Health', Buffer.alloc(0))).toBe(session);
  expect(table.verify(md, '/nextbuy.v1.Worker/Health', Buffer.alloc(0))).toBe('replayed');
  expect(table.verify(signer.sign(new grpc.Metadata(), '/nextbuy.v1.Worker/Health'), '/nextbuy.v1.Worker/Health', Buffer.alloc(32, 7))).toBe('other connection');
  expect(table.verify(new SessionSigner(session.id, Buffer.alloc(32)).sign(new grpc.Metadata(), '/x'), '/x', Buffer.alloc(0))).toBe('bad proof');
});
