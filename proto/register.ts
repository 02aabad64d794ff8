/**
 * The client side of Coordinator.Register: how a worker (or the static backend, on a worker's behalf)
 * joins a run. Used by worker/main.ts and coordinator/cluster/static.ts.
 */
import { ClusterError, NextbuyError, ProtocolError, SecurityError } from '../core/errors.js';
import { Backoff } from '../core/backoff.js';
import { PROTOCOL_VERSION, createCoordinatorClient, grpc, type RegisterChallengeReply, type RegisterReply } from './index.js';
import { channelCredentials, type TlsMaterial } from './credentials.js';
import { registrationProof } from './handshake.js';

export interface RegisterOptions {
  /** host:port of the coordinator's registration server. */
  coordinatorAddress: string;
  /** host:port the coordinator should dial to reach the worker. */
  address: string;
  runId: string;
  token: string;
  workerName: string;
  /** Only tests change this, to play a worker of another version. @default PROTOCOL_VERSION */
  protocolVersion?: number;
  /** Deadline of one Register call; the coordinator says Hello to the worker before it answers. @default 30000 */
  deadlineMs?: number;
  /** Mutual TLS material for the call. @default the process's (useProcessTls), else plaintext */
  tls?: TlsMaterial | null;
}

/** A failed Register that is worth trying again (coordinator not up yet, network blip). */
export class RetryableRegisterError extends ClusterError {}

/** One Register call. Refusals become ProtocolError (version), SecurityError (proof) or ClusterError. */
export async function registerWorker(o: RegisterOptions): Promise<RegisterReply> {
  const client = createCoordinatorClient(o.coordinatorAddress, channelCredentials(o.tls ?? undefined));
  const version = o.protocolVersion ?? PROTOCOL_VERSION;
  try {
    const { challenge } = await new Promise<RegisterChallengeReply>((resolve, reject) =>
      client.RegisterChallenge({ protocol_version: version }, new grpc.Metadata(), { deadline: Date.now() + (o.deadlineMs ?? 30_000) }, (err, res) =>
        err ? reject(err) : resolve(res!),
      ),
    );
    const reply = await new Promise<RegisterReply>((resolve, reject) =>
      client.Register(
        {
          protocol_version: version,
          address: o.address,
          run_id: o.runId,
          worker_name: o.workerName,
          proof: registrationProof(o.token, o.runId, o.address, o.workerName, challenge),
          challenge,
        },
        new grpc.Metadata(),
        { deadline: Date.now() + (o.deadlineMs ?? 30_000) },
        (err, res) => (err ? reject(err) : resolve(res!)),
      ),
    );
    if (!reply.accepted) throw new ClusterError(`coordinator ${o.coordinatorAddress} refused worker ${o.workerName} (${o.address}): ${reply.reason}`);
    return reply;
  } catch (e) {
    if (e instanceof NextbuyError) throw e;
    const err = e as grpc.ServiceError;
    const what = `registering worker ${o.workerName} (${o.address}) with coordinator ${o.coordinatorAddress}`;
    switch (err.code) {
      case grpc.status.FAILED_PRECONDITION:
        throw new ProtocolError(err.details);
      case grpc.status.PERMISSION_DENIED:
      case grpc.status.UNAUTHENTICATED:
        throw new SecurityError(`${what}: ${err.details}`);
      case grpc.status.UNAVAILABLE:
      case grpc.status.DEADLINE_EXCEEDED:
        throw new RetryableRegisterError(`${what}: ${err.details || err.message}`, { cause: e });
      default:
        throw new ClusterError(`${what}: ${err.details || err.message}`, { cause: e });
    }
  } finally {
    client.close();
  }
}

/** Registers, retrying with the shared backoff while the coordinator is unreachable, up to `timeoutMs`. */
export async function registerWithRetry(o: RegisterOptions & { timeoutMs: number; signal?: AbortSignal }): Promise<RegisterReply> {
  const backoff = new Backoff();
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    try {
      return await registerWorker(o);
    } catch (e) {
      if (!(e instanceof RetryableRegisterError) || Date.now() >= deadline) throw e;
      await backoff.wait(o.signal);
    }
  }
}
