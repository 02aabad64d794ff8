/**
 * The worker process: `node --import tsx worker/main.ts [--engine model|echo] [--host H] [--port P] [--name N]`.
 * Reads the run's coordinator address, run id, account and token from the environment (WORKER_ENV),
 * starts the gRPC server, registers with the coordinator, and drains on SIGTERM (exit 0).
 * Logs through core/log.ts like the coordinator (stderr; every line with the run's account, date and
 * run id from the environment): lifecycle events at info, per-call events at debug, failures at warn.
 */
import { parseArgs } from 'node:util';
import { NextbuyError, UsageError } from '../core/errors.js';
import { log as processLog, setLogContext, type LogFields, type Logger, type LogLevel } from '../core/log.js';
import { MAX_MESSAGE_BYTES, WORKER_ENV } from '../proto/index.js';
import { registerWithRetry } from '../proto/register.js';
import { isLoopback, readTlsFiles, tlsFilesFromEnv, useProcessTls } from '../proto/credentials.js';
import { createEchoEngine } from './echo-engine.js';
import type { WorkerEngine } from './engine.js';
import { WorkerHealth, serveWorkerHealth } from './health.js';
import { DEFAULT_DRAIN_GRACE_MS, startWorkerServer } from './server.js';

/** How long a worker keeps trying to reach its coordinator before giving up. @default, see WORKER_ENV.registerTimeoutMs */
const REGISTER_TIMEOUT_MS = 300_000;

/** /healthz, /readyz and /metrics (worker/health.ts): every log event passes through it. */
const health = new WorkerHealth();

/** Levels of the server's events; any other is info. Per shard and per call: debug, so a night's log stays short. */
const EVENT_LEVELS: Record<string, LogLevel> = {
  'score-start': 'debug',
  'score-done': 'debug',
  'training-data': 'debug',
  'model-loaded': 'debug',
  bound: 'debug',
  listening: 'debug',
  'handed-back': 'warn',
  'score-failed': 'warn',
  'call-failed': 'warn',
  'hello-refused': 'warn',
  drained: 'debug',
  exit: 'debug',
  'transport-plaintext': 'warn',
};

/** The worker's logger, named once main() knows the name (a failure before that is still logged). */
let workerLog: Logger = processLog;
/** The run on this worker's lines. */
let contextRun: string | undefined;

function log(event: string, fields: Record<string, unknown> = {}): void {
  health.observe(event, fields);
  // A static worker learns its run at Hello: its lines name it from then on (a worker started for the run has it already, with the date).
  if (event === 'bound' && fields.run !== contextRun) {
    contextRun = String(fields.run);
    setLogContext({ account: String(fields.account), run: contextRun });
  }
  workerLog[EVENT_LEVELS[event] ?? 'info'](event, fields as LogFields);
}

function numberEnv(key: string, fallback: number): number {
  const raw = process.env[key];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${key} must be a non-negative number, got "${raw}"`);
  return n;
}

async function loadEngine(kind: string): Promise<WorkerEngine> {
  if (kind === 'echo') return createEchoEngine();
  if (kind === 'model') {
    // Imported lazily: the echo engine must work without the model stack (and before it exists).
    const modulePath = './model-engine.js';
    const mod = (await import(modulePath)) as { createModelEngine: () => WorkerEngine | Promise<WorkerEngine> };
    return await mod.createModelEngine();
  }
  throw new UsageError(`--engine must be "model" or "echo", got "${kind}"`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      engine: { type: 'string', default: 'model' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      name: { type: 'string' },
    },
    strict: true,
  });
  const env = process.env;
  const name = values.name ?? env[WORKER_ENV.name] ?? `worker-${process.pid}`;
  const token = env[WORKER_ENV.token];
  if (!token) throw new UsageError(`${WORKER_ENV.token} is not set: the worker needs the run token (set it in the environment, never on the command line)`);
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0..65535, got "${values.port}"`);
  const coordinator = env[WORKER_ENV.coordinator] || null;
  const runId = env[WORKER_ENV.runId] || null;
  workerLog = processLog.child({ worker: name });
  contextRun = runId ?? undefined;
  setLogContext({ account: env[WORKER_ENV.account], date: env[WORKER_ENV.date], run: contextRun });
  if (coordinator && !runId) throw new UsageError(`${WORKER_ENV.runId} must be set when ${WORKER_ENV.coordinator} is`);

  if (env[WORKER_ENV.exitWithParent] === '1') {
    // The local backend holds our stdin open; when the coordinator dies, it closes and we follow.
    process.stdin.on('end', () => process.exit(0));
    process.stdin.on('error', () => process.exit(0));
    process.stdin.resume();
  }

  // Mutual TLS for both the server it runs and the Register calls it makes; refused before serving if the files are bad.
  const tlsFiles = tlsFilesFromEnv(env);
  useProcessTls(tlsFiles ? readTlsFiles(tlsFiles) : null);
  if (!tlsFiles && !isLoopback(values.host!)) {
    log('transport-plaintext', { host: values.host, fix: `set ${WORKER_ENV.tlsCa}, ${WORKER_ENV.tlsCert} and ${WORKER_ENV.tlsKey} for mutual TLS` });
  }

  await serveWorkerHealth(health);
  const engine = await loadEngine(values.engine!);
  // Hello tells the coordinator the runtimes this worker uses: wait for the training runtime's choice.
  await engine.ready?.();
  let exiting = false;
  let heartbeatTimeoutMs = 0; // known once registered
  const server = await startWorkerServer({
    engine,
    token,
    runId,
    name,
    host: values.host!,
    port,
    maxMessageBytes: numberEnv(WORKER_ENV.maxMessageBytes, MAX_MESSAGE_BYTES),
    drainGraceMs: numberEnv(WORKER_ENV.drainGraceMs, DEFAULT_DRAIN_GRACE_MS),
    log: (event, fields) => log(event, fields),
    get announceDrainMs() {
      return heartbeatTimeoutMs / 2; // Health comes every timeout/3
    },
    onDrained: () => {
      exiting = true;
      void server.close().then(() => {
        log('exit', { code: 0 });
        process.exit(0);
      });
    },
  });

  const onSignal = (signal: string) => void server.drain(signal);
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));

  const advertised = `${env[WORKER_ENV.advertiseHost] || values.host}:${server.port}`;
  // A Hello must name this address; a static worker started without NEXTBUY_ADVERTISE_HOST answers any.
  if (coordinator || env[WORKER_ENV.advertiseHost]) server.advertise(advertised);
  if (!coordinator || !runId) {
    health.set('ready');
    log('ready', { address: server.address, registered: false });
    return;
  }
  const registerTimeoutMs = numberEnv(WORKER_ENV.registerTimeoutMs, REGISTER_TIMEOUT_MS);
  const register = () =>
    registerWithRetry({ coordinatorAddress: coordinator, address: advertised, runId, token, workerName: name, timeoutMs: registerTimeoutMs });

  let registeredAt = Date.now();
  health.set('registering');
  const reply = await register();
  registeredAt = Date.now();
  health.set('ready');
  heartbeatTimeoutMs = reply.heartbeat_timeout_ms;
  log('registered', { address: advertised, coordinator, tls: tlsFiles !== null });

  // A worker dropped from the pool (it was frozen, or the network split) hears no more Health calls:
  // it registers again, and the coordinator admits it as a new member.
  const silenceMs = 2 * (reply.heartbeat_timeout_ms || 30_000);
  let reRegistering = false;
  const watchdog = setInterval(() => {
    if (exiting || reRegistering || server.draining()) return;
    const lastHeard = Math.max(server.lastHealthAt(), registeredAt);
    if (Date.now() - lastHeard < silenceMs) return;
    reRegistering = true;
    health.set('registering');
    log('re-registering', { silentMs: Date.now() - lastHeard });
    register().then(
      () => {
        registeredAt = Date.now();
        reRegistering = false;
        health.set('ready');
        log('registered', { address: advertised, coordinator, again: true });
      },
      (e: unknown) => fail(e),
    );
  }, Math.max(100, silenceMs / 4));
  watchdog.unref();
}

function fail(e: unknown): never {
  workerLog.error('failed', { error: e instanceof Error ? e : String(e) });
  process.exit(e instanceof NextbuyError ? e.exitCode : 1);
}

main().catch(fail);
