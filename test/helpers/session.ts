/**
 * Calling a worker by hand as a token holder would (the session handshake, then signed calls), or as a
 * stranger who lacks the token and forges what it cannot compute.
 */
import { randomBytes } from 'node:crypto';
import { SecurityError } from '../../core/errors.js';
import { channelCredentials, type TlsMaterial } from '../../proto/credentials.js';
import { SessionSigner } from '../../proto/handshake.js';
import { PROTOCOL_METADATA_KEY, PROTOCOL_VERSION, createWorkerClient, grpc, workerMethod } from '../../proto/index.js';
import { openWorkerSession } from '../../proto/session.js';

export interface SessionAs {
  token: string;
  runId: string;
  account: string;
  /** @default plaintext */
  tls?: TlsMaterial | null;
}

/**
 * A session with the worker at `address`. With a token the worker does not hold (or a run it refuses),
 * the handshake cannot succeed: the signer returned is then a forgery (a random session id, a key from the wrong token),
 * which is what a stranger has.
 */
export async function sessionWith(address: string, as: SessionAs): Promise<SessionSigner> {
  const client = createWorkerClient(address, channelCredentials(as.tls ?? null));
  try {
    const { signer } = await openWorkerSession({ client, address, runId: as.runId, account: as.account, token: as.token, tls: as.tls ?? null });
    return signer;
  } catch (e) {
    const code = (e as Partial<grpc.ServiceError>).code;
    if (!(e instanceof SecurityError) && code !== grpc.status.PERMISSION_DENIED && code !== grpc.status.UNAUTHENTICATED) throw e;
    return new SessionSigner(randomBytes(16), randomBytes(32));
  } finally {
    client.close();
  }
}

/** Metadata of one call of Worker `rpc` in `signer`'s session. */
export function signed(signer: SessionSigner, rpc: string, protocolVersion = PROTOCOL_VERSION): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(PROTOCOL_METADATA_KEY, String(protocolVersion));
  return signer.sign(md, workerMethod(rpc));
}
