/**
 * The coordinator's registration server (Coordinator.RegisterChallenge, Register): every worker,
 * however it was started, announces its dialable address here with proof that it holds the run token,
 * bound to that address and to a fresh challenge (proto/handshake.ts). The pool then dials it and runs
 * the session handshake; Register answers once the worker is a member (or why it is not).
 * Everything here is served before authentication: messages are small and bounded (server-guard.ts),
 * and a refusal tells the caller nothing about this run.
 */
import { ClusterError } from '../../core/errors.js';
import {
  PROTOCOL_MISMATCH_STATUS,
  PROTOCOL_VERSION,
  coordinatorService,
  createServer,
  grpc,
  protocolMismatchMessage,
  type CoordinatorHandlers,
  shutdownServer,
} from '../../proto/index.js';
import { serverCredentials } from '../../proto/credentials.js';
import { RegistrationChallenges, proofMatches, registrationProof } from '../../proto/handshake.js';
import { createServerGuard } from '../../proto/server-guard.js';
import type { WorkerPool } from './pool.js';

export interface RegistrationServerOptions {
  pool: WorkerPool;
  /** @default '127.0.0.1' (use '0.0.0.0' where workers are pods) */
  host?: string;
  /** @default 0 (any free port) */
  port?: number;
  /** Connections kept open at once, 8 registrations in progress each (a registration waits for its worker's handshake). @default 256 */
  maxConnections?: number;
}

/** Register waits for the pool's handshake with the worker (helloTimeoutMs, 10 s by default) and a little more. */
const REGISTER_TIMEOUT_MS = 30_000;

export interface RegistrationServer {
  /** host:port the server is bound to. */
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

const ADDRESS = /^(?:[A-Za-z0-9.-]+|\[[0-9a-fA-F:.]+\]):\d{1,5}$/;

export async function startRegistrationServer(o: RegistrationServerOptions): Promise<RegistrationServer> {
  const { pool } = o;
  const { runId, token, heartbeatTimeoutMs } = pool.options;
  const challenges = new RegistrationChallenges();
  const handlers: CoordinatorHandlers = {
    // Answered whatever the version: Register checks it, and records the refusal with the worker's name.
    RegisterChallenge: (_call, callback) => callback(null, { challenge: challenges.issue() }),
    Register: (call, callback) => {
      const req = call.request;
      const name = req.worker_name || '(unnamed)';
      /** `told` goes to the caller, `logged` (which may name the run ids) only to this run's log. */
      const refuse = (code: grpc.status, told: string, logged = told) => {
        pool.reject(req.address, name, logged);
        callback({ code, details: told });
      };
      if (req.protocol_version !== PROTOCOL_VERSION) {
        return refuse(PROTOCOL_MISMATCH_STATUS, protocolMismatchMessage('coordinator at Register', req.protocol_version, PROTOCOL_VERSION, 'worker', 'coordinator'));
      }
      if (!challenges.valid(req.challenge)) {
        return refuse(grpc.status.UNAUTHENTICATED, 'registration challenge missing, expired or not issued here: ask RegisterChallenge again');
      }
      // One answer for a wrong run id and a wrong proof: a stranger learns neither this run's id nor which was wrong.
      const told = "registration refused: the worker does not hold this run's token, or was started for another run";
      if (req.run_id !== runId) return refuse(grpc.status.PERMISSION_DENIED, told, `${told} (it asked for run ${req.run_id}, not ${runId})`);
      if (!proofMatches(registrationProof(token, runId, req.address, req.worker_name, req.challenge), req.proof)) {
        return refuse(grpc.status.PERMISSION_DENIED, told, `${told} (registration proof does not match)`);
      }
      if (!ADDRESS.test(req.address)) {
        return refuse(grpc.status.INVALID_ARGUMENT, `worker address "${req.address}" is not host:port`);
      }
      pool.admit(req.address, name).then(
        () => callback(null, { accepted: true, reason: '', heartbeat_timeout_ms: heartbeatTimeoutMs }),
        (e: unknown) => callback(null, { accepted: false, reason: (e as Error).message, heartbeat_timeout_ms: heartbeatTimeoutMs }),
      );
    },
  };
  const guard = createServerGuard({
    preAuthMethods: ['/nextbuy.v1.Coordinator/RegisterChallenge', '/nextbuy.v1.Coordinator/Register'],
    authenticate: () => ({ code: grpc.status.UNIMPLEMENTED, details: 'unknown method' }),
    preAuthTimeoutMs: REGISTER_TIMEOUT_MS,
    maxStreamsPerConnection: 8,
    maxConnections: o.maxConnections ?? 256,
    unauthenticatedConnectionMs: 0,
  });
  const server = createServer(undefined, { ...guard.serverOptions, 'grpc.max_connection_idle_ms': REGISTER_TIMEOUT_MS * 2 });
  server.addService(coordinatorService, handlers);
  const host = o.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${o.port ?? 0}`, serverCredentials(pool.options.tls ?? null), (err, p) =>
      err ? reject(new ClusterError(`cannot listen for worker registrations on ${host}:${o.port ?? 0}: ${err.message}`)) : resolve(p),
    ),
  );
  guard.watchConnections(server);
  return {
    address: `${host}:${port}`,
    port,
    close: () => shutdownServer(server),
  };
}
