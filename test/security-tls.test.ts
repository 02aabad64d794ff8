/**
 * Mutual TLS between the coordinator and its workers: a real run over TLS with real worker processes,
 * and the peers that must not get in (another CA, plaintext) fail cleanly without harming the run.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LocalBackend, compileK8sBackendOptions, startCluster, type Cluster } from '../coordinator/cluster/index.js';
import { buildWorkerObjects } from '../coordinator/cluster/k8s/index.js';
import { ClusterError, SecurityError } from '../core/errors.js';
import { compileJob } from '../jobs/job-file.js';
import { channelCredentials, readTlsFiles, type TlsFiles, type TlsMaterial } from '../proto/credentials.js';
import type { SessionSigner } from '../proto/handshake.js';
import { PROTOCOL_METADATA_KEY, PROTOCOL_VERSION, createWorkerClient, grpc, type HealthReply } from '../proto/index.js';
import { expectEveryCustomerOnce, scoreAll, writeSampleShards, type SampleShards } from './helpers/cluster.js';
import { createTestPki, spawnStrayWorker, type StrayWorker, type TestPki } from './helpers/tls.js';
import { sessionWith, signed } from './helpers/session.js';

const RUN = 'run-tls';
const TOKEN = 'tls-test-token-0123456789';

let pki: TestPki;
let coordinatorFiles: TlsFiles;
let workerFiles: TlsFiles;
let otherCaFiles: TlsFiles;
let sample: SampleShards;

beforeAll(async () => {
  pki = await createTestPki();
  coordinatorFiles = await pki.issue('main', 'coordinator');
  workerFiles = await pki.issue('main', 'worker');
  otherCaFiles = await pki.issue('other', 'worker');
  sample = await writeSampleShards({ shards: 4, customersPerShard: 120, batchRows: 40, seed: 23 });
}, 60_000);
afterAll(async () => {
  await sample?.cleanup();
  await pki?.cleanup();
});

/**
 * Health on a worker with the given channel credentials, in a session opened over them (or in `session`);
 * the status code it ended with (OK = 0).
 */
async function health(address: string, tls: TlsMaterial | null, session?: SessionSigner): Promise<{ code: grpc.status; details: string; reply?: HealthReply }> {
  try {
    session ??= await sessionWith(address, { token: TOKEN, runId: RUN, account: 'acme', tls });
  } catch (e) {
    return { code: (e as grpc.ServiceError).code, details: (e as grpc.ServiceError).details };
  }
  const client = createWorkerClient(address, channelCredentials(tls));
  const md = signed(session, 'Health');
  return new Promise((resolve) =>
    client.Health({}, md, { deadline: Date.now() + 5_000 }, (e, reply) => {
      client.close();
      resolve(e ? { code: e.code, details: e.details } : { code: grpc.status.OK, details: '', reply });
    }),
  );
}

async function withTlsCluster<T>(fn: (c: Cluster, lines: string[]) => Promise<T>): Promise<T> {
  const lines: string[] = [];
  const cluster = await startCluster({
    backend: new LocalBackend({ engine: 'echo', stopGraceMs: 5_000, env: { NEXTBUY_LOG: 'debug' }, onOutput: (_w, stream, line) => void (stream === 'stderr' && line.startsWith('{') && lines.push(line)) }),
    runId: RUN,
    account: 'acme',
    token: TOKEN,
    workers: 2,
    minWorkers: 2,
    heartbeatTimeoutMs: 1_500,
    startTimeoutMs: 60_000,
    security: { tls: coordinatorFiles },
  });
  try {
    return await fn(cluster, lines);
  } finally {
    await cluster.stop();
  }
}

describe('a run over mutual TLS', () => {
  test('real worker processes register over TLS and score every customer exactly once', async () => {
    await withTlsCluster(async (cluster, lines) => {
      const run = await scoreAll(cluster.pool, sample.shards);
      expectEveryCustomerOnce(run, sample.customers, sample.shards);
      const registered = lines.map((l) => JSON.parse(l) as { event: string; tls?: boolean }).filter((l) => l.event === 'registered');
      expect(registered.length).toBe(2);
      expect(registered.every((l) => l.tls === true)).toBe(true);
    });
  });

  test('a worker with a certificate from another CA cannot register, and the run goes on', async () => {
    await withTlsCluster(async (cluster) => {
      const stray = spawnStrayWorker({
        NEXTBUY_COORDINATOR: cluster.coordinatorAddress,
        NEXTBUY_RUN_ID: RUN,
        NEXTBUY_ACCOUNT: 'acme',
        NEXTBUY_TOKEN: TOKEN, // even with the right token: the handshake fails first
        NEXTBUY_TLS_CA: otherCaFiles.ca,
        NEXTBUY_TLS_CERT: otherCaFiles.cert,
        NEXTBUY_TLS_KEY: otherCaFiles.key,
        NEXTBUY_REGISTER_TIMEOUT_MS: '3000',
      });
      try {
        const code = await stray.exited;
        expect(code).toBe(5); // ClusterError: could not reach (handshake) the coordinator before its timeout
        expect(stray.stderr()).toMatch(/registering worker stray/);
        expect(stray.lines.some((l) => l.event === 'registered')).toBe(false);
        expect(cluster.pool.workers().map((w) => w.name).sort()).toEqual(['local-0', 'local-1']);
        const run = await scoreAll(cluster.pool, sample.shards);
        expectEveryCustomerOnce(run, sample.customers, sample.shards);
      } finally {
        stray.kill();
      }
    });
  });
});

describe('peers a TLS worker refuses to serve', () => {
  let stray: StrayWorker;
  let address: string;
  beforeAll(async () => {
    // A TLS worker that does not register (no coordinator): we dial it ourselves.
    stray = spawnStrayWorker({ NEXTBUY_TOKEN: TOKEN, NEXTBUY_TLS_CA: workerFiles.ca, NEXTBUY_TLS_CERT: workerFiles.cert, NEXTBUY_TLS_KEY: workerFiles.key }, 'tls-worker');
    address = String((await stray.waitFor('ready')).address);
  }, 60_000);
  afterAll(() => stray?.kill());

  test('a coordinator of the same CA is served', async () => {
    const r = await health(address, readTlsFiles(coordinatorFiles));
    expect(r.code).toBe(grpc.status.OK);
    expect(r.reply?.state).toBe('SERVING');
  });

  test('a plaintext client fails cleanly (UNAVAILABLE) and the worker keeps serving', async () => {
    const r = await health(address, null);
    expect(r.code).toBe(grpc.status.UNAVAILABLE);
    expect((await health(address, readTlsFiles(coordinatorFiles))).code).toBe(grpc.status.OK);
  });

  test("a session is bound to the coordinator's certificate: another certificate of the same CA cannot use it", async () => {
    const coordinator = readTlsFiles(coordinatorFiles);
    const session = await sessionWith(address, { token: TOKEN, runId: RUN, account: 'acme', tls: coordinator });
    expect((await health(address, coordinator, session)).code).toBe(grpc.status.OK);
    const other = await health(address, readTlsFiles(workerFiles), session);
    expect(other.code).toBe(grpc.status.UNAUTHENTICATED);
    expect((await stray.waitFor('call-refused')).why).toBe('other connection');
  });

  test('a client with a certificate from another CA is refused at the handshake', async () => {
    const r = await health(address, readTlsFiles(otherCaFiles));
    expect(r.code).toBe(grpc.status.UNAVAILABLE);
    expect(stray.lines.some((l) => l.event === 'score-start')).toBe(false);
  });

  test('a client with no certificate at all is refused', async () => {
    const main = readTlsFiles(coordinatorFiles);
    const client = createWorkerClient(address, grpc.credentials.createSsl(main.ca, null, null, { checkServerIdentity: () => undefined }));
    const md = new grpc.Metadata();
    md.set(PROTOCOL_METADATA_KEY, String(PROTOCOL_VERSION));
    const code = await new Promise<grpc.status>((resolve) =>
      client.Health({}, md, { deadline: Date.now() + 5_000 }, (e) => {
        client.close();
        resolve(e ? e.code : grpc.status.OK);
      }),
    );
    expect(code).not.toBe(grpc.status.OK);
  });

  test('the coordinator refuses to admit a worker whose certificate another CA signed', async () => {
    const other = spawnStrayWorker({ NEXTBUY_TOKEN: TOKEN, NEXTBUY_TLS_CA: otherCaFiles.ca, NEXTBUY_TLS_CERT: otherCaFiles.cert, NEXTBUY_TLS_KEY: otherCaFiles.key }, 'other-ca');
    try {
      const otherAddress = String((await other.waitFor('ready')).address);
      await withTlsCluster(async (cluster) => {
        await expect(cluster.pool.admit(otherAddress, 'other-ca')).rejects.toThrow(/other-ca/);
        expect(cluster.pool.workers().some((w) => w.name === 'other-ca')).toBe(false);
        expect(cluster.pool.recentRejections().join('\n')).toMatch(/other-ca/);
      });
    } finally {
      other.kill();
    }
  }, 60_000);
});

describe('configuration', () => {
  test('security.tls paths are resolved against the job file, and unknown keys are refused by name', () => {
    const base = {
      account: 'acme',
      input: { path: 'events.csv' },
      columns: { customer: 'c', time: 't', eventType: 'e' },
      events: { types: ['buy'], purchase: 'buy' },
      label: { horizonDays: 1 },
    };
    const job = compileJob({ ...base, security: { tls: { ca: 'tls/ca.pem', cert: 'tls/c.pem', key: 'tls/c.key' } } }, '/jobs/acme/job.yaml');
    expect(job.security?.tls).toEqual({ ca: '/jobs/acme/tls/ca.pem', cert: '/jobs/acme/tls/c.pem', key: '/jobs/acme/tls/c.key' });
    expect(job.security?.allowPlaintext).toBe(false);
    expect(() => compileJob({ ...base, security: { tls: { ca: 'a', cert: 'b' } } }, '/jobs/acme/job.yaml')).toThrow(/security\.tls\.key is required/);
    expect(() => compileJob({ ...base, security: { tsl: {} } }, '/jobs/acme/job.yaml')).toThrow(/security\.tsl is not a known field/);
  });

  test('a certificate file that is not PEM stops the cluster before anything listens', async () => {
    const bogus = path.join(pki.dir, 'bogus.pem');
    await writeFile(bogus, 'not a certificate');
    const start = startCluster({
      backend: new LocalBackend({ engine: 'echo' }),
      runId: RUN,
      account: 'acme',
      token: TOKEN,
      workers: 1,
      heartbeatTimeoutMs: 1_500,
      security: { tls: { ...coordinatorFiles, cert: bogus } },
    });
    await expect(start).rejects.toThrow(SecurityError);
    await expect(start).rejects.toThrow(/bogus\.pem is not a PEM certificate/);
  });

  test('plaintext on a non-loopback listen address is warned about, naming the fix', async () => {
    const events: { event: string; fields?: Record<string, unknown> }[] = [];
    const cluster = await startCluster({
      backend: new LocalBackend({ engine: 'echo', stopGraceMs: 5_000, onOutput: () => {} }),
      runId: RUN,
      account: 'acme',
      token: TOKEN,
      workers: 1,
      heartbeatTimeoutMs: 1_500,
      listenHost: '0.0.0.0',
      advertiseHost: '127.0.0.1',
      log: (event, fields) => events.push({ event, fields }),
    });
    await cluster.stop();
    const warning = events.find((e) => e.event === 'transport.plaintext');
    expect(warning?.fields?.addresses).toBe('0.0.0.0');
    expect(String(warning?.fields?.fix)).toMatch(/security\.tls/);
  });

  test('Kubernetes worker pods get their certificates from a mounted Secret, and a TLS job without one is refused', () => {
    const ctx = { coordinatorAddress: '0.0.0.0:7070', runId: RUN, account: 'acme', token: TOKEN, workers: 2, tls: coordinatorFiles };
    const withSecret = compileK8sBackendOptions({ image: 'nextbuy-worker:test', coordinatorPod: { name: 'c', uid: 'u' }, coordinatorHost: '10.1.2.3', tlsSecret: 'acme-worker-tls' });
    const pod = buildWorkerObjects(withSecret, ctx, 'ns').job.spec!.template.spec!;
    const env = Object.fromEntries(pod.containers[0]!.env!.map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ NEXTBUY_TLS_CA: '/etc/nextbuy/tls/ca.crt', NEXTBUY_TLS_CERT: '/etc/nextbuy/tls/tls.crt', NEXTBUY_TLS_KEY: '/etc/nextbuy/tls/tls.key' });
    expect(pod.volumes).toContainEqual({ name: 'tls', secret: { secretName: 'acme-worker-tls', defaultMode: 0o440 } });
    expect(pod.containers[0]!.volumeMounts).toContainEqual({ name: 'tls', mountPath: '/etc/nextbuy/tls', readOnly: true });

    const without = compileK8sBackendOptions({ image: 'nextbuy-worker:test', coordinatorPod: { name: 'c', uid: 'u' }, coordinatorHost: '10.1.2.3' });
    expect(() => buildWorkerObjects(without, ctx, 'ns')).toThrow(ClusterError);
    expect(() => buildWorkerObjects(without, ctx, 'ns')).toThrow(/tlsSecret/);
    const plaintextPod = buildWorkerObjects(without, { ...ctx, tls: null }, 'ns').job.spec!.template.spec!;
    expect(plaintextPod.volumes!.map((v) => v.name)).toEqual(['tmp']);
  });
});
