/**
 * A run's cluster: the worker pool, the registration server workers announce themselves to, and the
 * backend that launched them. `startCluster` returns once enough workers have joined.
 */
import { randomBytes } from 'node:crypto';
import { ClusterError } from '../../core/errors.js';
import type { Job } from '../../jobs/job.js';
import { log as defaultLog } from '../../core/log.js';
import { WORKER_ENV } from '../../proto/index.js';
import { nonLoopback, readTlsFiles, type TlsFiles } from '../../proto/credentials.js';
import type { ClusterBackend } from './backend.js';
import { LocalBackend, type LocalBackendOptions } from './local.js';
import { WorkerPool } from './pool.js';
import { startRegistrationServer, type RegistrationServer } from './registration.js';
import { StaticBackend } from './static.js';

/** How long stop() waits for each worker to answer Drain before the backend stops it harder. */
const SHUTDOWN_DEADLINE_MS = 5_000;

export interface ClusterOptions {
  backend: ClusterBackend;
  runId: string;
  account: string;
  /** The date the run scores (YYYY-MM-DD), handed to the workers for their log lines. @default none */
  date?: string;
  /** The per-run secret. @default NEXTBUY_TOKEN from the environment, else 32 random bytes */
  token?: string;
  /** Workers the backend starts. */
  workers: number;
  heartbeatTimeoutMs: number;
  /** Host the registration server binds. @default '127.0.0.1' ('0.0.0.0' in a pod) */
  listenHost?: string;
  /** @default 0 (any free port) */
  listenPort?: number;
  /** Host workers dial to register (a Service name in Kubernetes). @default listenHost */
  advertiseHost?: string;
  /** Return once this many workers have joined. @default 1 */
  minWorkers?: number;
  /** Give up waiting for minWorkers after this long. @default 120000 */
  startTimeoutMs?: number;
  log?: (event: string, fields?: Record<string, unknown>) => void;
  /** Transport security: mutual TLS certificate paths, and whether plaintext beyond loopback is accepted silently. @default plaintext, warned about beyond loopback */
  security?: ClusterSecurity;
}

export interface ClusterSecurity {
  /** The coordinator's certificate paths (workers get theirs through NEXTBUY_TLS_*; the local backend hands these over). @default null: plaintext */
  tls: TlsFiles | null;
  /** Plaintext to a non-loopback address without a warning. @default false */
  allowPlaintext?: boolean;
}

export interface Cluster {
  readonly pool: WorkerPool;
  readonly backend: ClusterBackend;
  readonly registration: RegistrationServer;
  /** host:port workers register at. */
  readonly coordinatorAddress: string;
  readonly token: string;
  /** Drains the workers, closes the pool and the registration server, stops the backend. Safe to call twice. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const token = o.token ?? process.env[WORKER_ENV.token] ?? randomBytes(32).toString('base64url');
  const tlsFiles = o.security?.tls ?? null;
  const tls = tlsFiles ? readTlsFiles(tlsFiles) : null;
  if (!tls) warnIfPlaintextLeavesMachine(o);
  const pool = new WorkerPool({ runId: o.runId, account: o.account, token, heartbeatTimeoutMs: o.heartbeatTimeoutMs, log: o.log, tls });
  let registration: RegistrationServer | null = null;
  let stopped: Promise<void> | null = null;
  const stop = () =>
    (stopped ??= (async () => {
      await pool.shutdownWorkers('the run is over', SHUTDOWN_DEADLINE_MS);
      await o.backend.stop();
      await registration?.close();
    })());
  try {
    registration = await startRegistrationServer({ pool, host: o.listenHost, port: o.listenPort });
    const coordinatorAddress = `${o.advertiseHost ?? o.listenHost ?? '127.0.0.1'}:${registration.port}`;
    await o.backend.start({ coordinatorAddress, runId: o.runId, account: o.account, date: o.date, token, workers: o.workers, tls: tlsFiles });
    await Promise.race([pool.waitForWorkers(o.minWorkers ?? 1, o.startTimeoutMs ?? 120_000), o.backend.failures()]);
    const reg = registration;
    return {
      pool,
      backend: o.backend,
      registration: reg,
      coordinatorAddress,
      token,
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (e) {
    await stop();
    throw e instanceof ClusterError ? e : new ClusterError(`cannot start the cluster for run ${o.runId}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Plaintext is the local default and fine on loopback. Beyond it the run token still decides who may
 * join, but customer data travel readable (and unauthenticated in content: a peer on the path can read
 * or alter them, or relay a static worker's handshake): say so loudly, unless the job accepted it.
 */
function warnIfPlaintextLeavesMachine(o: ClusterOptions): void {
  if (o.security?.allowPlaintext) return;
  const hosts = [o.listenHost ?? '127.0.0.1', ...(o.advertiseHost ? [o.advertiseHost] : []), ...(o.backend instanceof StaticBackend ? o.backend.addresses : [])];
  const exposed = nonLoopback(hosts);
  if (exposed.length === 0) return;
  const fields = {
    run: o.runId,
    addresses: exposed.join(','),
    fix: 'set security.tls (ca, cert, key) in the job file, or security.allowPlaintext: true to accept plaintext',
  };
  if (o.log) o.log('transport.plaintext', fields);
  else defaultLog.warn('transport.plaintext', fields);
}

/** The backend `--env local` means: processes on this machine, or the workers at cluster.addresses. */
export function localOrStaticBackend(job: Job, options: LocalBackendOptions = {}): ClusterBackend {
  return job.cluster.addresses.length > 0 ? new StaticBackend(job.cluster.addresses) : new LocalBackend(options);
}

/** ClusterOptions from the compiled job (the backend and run identity come from the caller). */
export function clusterOptionsFromJob(job: Job, run: { runId: string; backend: ClusterBackend; token?: string; date?: string }): ClusterOptions {
  return {
    backend: run.backend,
    runId: run.runId,
    account: job.account,
    date: run.date,
    token: run.token,
    workers: job.cluster.addresses.length > 0 ? job.cluster.addresses.length : job.cluster.workers,
    heartbeatTimeoutMs: job.cluster.heartbeatTimeoutMs,
    security: { tls: job.security?.tls ?? null, allowPlaintext: job.security?.allowPlaintext ?? false },
  };
}
