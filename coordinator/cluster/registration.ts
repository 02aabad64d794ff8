/**
 * The coordinator's registration server (Coordinator.Register): every worker, however it was
 * started, announces its dialable address here with proof that it holds the run token. The pool
 * then dials it and says Hello; Register answers once the worker is a member (or why it is not).
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
import { proofMatches, registrationProof, serverCredentials } from '../../proto/credentials.js';
import type { WorkerPool } from './pool.js';

export interface RegistrationServerOptions {
  pool: WorkerPool;
  /** @default '127.0.0.1' (use '0.0.0.0' where workers are pods) */
  host?: string;
  /** @default 0 (any free port) */
  port?: number;
}

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
  const handlers: CoordinatorHandlers = {
    Register: (call, callback) => {
      const req = call.request;
      const name = req.worker_name || '(unnamed)';
      const refuse = (code: grpc.status, details: string) => {
        pool.reject(req.address, name, details);
        callback({ code, details });
      };
      if (req.protocol_version !== PROTOCOL_VERSION) {
        return refuse(PROTOCOL_MISMATCH_STATUS, protocolMismatchMessage(`coordinator of run ${runId} at Register`, req.protocol_version, PROTOCOL_VERSION, 'worker', 'coordinator'));
      }
      if (req.run_id !== runId) {
        return refuse(grpc.status.PERMISSION_DENIED, `this coordinator runs ${runId}, not ${req.run_id}: the worker was started for another run`);
      }
      if (!proofMatches(registrationProof(token, runId, req.address), req.proof)) {
        return refuse(grpc.status.PERMISSION_DENIED, `registration proof does not match: the worker does not hold run ${runId}'s token`);
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
  const server = createServer();
  server.addService(coordinatorService, handlers);
  const host = o.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${o.port ?? 0}`, serverCredentials(pool.options.tls ?? null), (err, p) =>
      err ? reject(new ClusterError(`cannot listen for worker registrations on ${host}:${o.port ?? 0}: ${err.message}`)) : resolve(p),
    ),
  );
  return {
    address: `${host}:${port}`,
    port,
    close: () => shutdownServer(server),
  };
}
