/**
 * The coordinator's side of the session handshake (see handshake.ts): Hello, check the worker's proof,
 * then HelloConfirm with the coordinator's. Used by the pool at admission and by tests that call a
 * worker by hand as a token holder would.
 */
import { ProtocolError, SecurityError } from '../core/errors.js';
import {
  PROTOCOL_METADATA_KEY,
  PROTOCOL_VERSION,
  grpc,
  protocolMismatchMessage,
  type HelloConfirmReply,
  type HelloReply,
  type WorkerClient,
} from './index.js';
import type { TlsMaterial } from './credentials.js';
import {
  SessionSigner,
  certificateFingerprint,
  coordinatorHelloProof,
  newNonce,
  peerFingerprint,
  proofMatches,
  sessionKey,
  workerHelloProof,
  type HelloTranscript,
} from './handshake.js';

export interface OpenSessionOptions {
  client: WorkerClient;
  /** The address `client` dials (the worker's proof covers it). */
  address: string;
  runId: string;
  account: string;
  token: string;
  /** This side's TLS material (its certificate is part of the transcript); null in plaintext. */
  tls: TlsMaterial | null;
  /** Deadline of each of the two calls. @default 10000 */
  deadlineMs?: number;
  /** Only tests change this, to play a coordinator of another version. @default PROTOCOL_VERSION */
  protocolVersion?: number;
}

export interface OpenedSession {
  signer: SessionSigner;
  worker: HelloConfirmReply;
}

function unary<Req, Res>(
  client: WorkerClient,
  rpc: 'Hello' | 'HelloConfirm',
  request: Req,
  version: number,
  deadlineMs: number,
): Promise<{ reply: Res; call: grpc.ClientUnaryCall }> {
  return new Promise((resolve, reject) => {
    const md = new grpc.Metadata();
    md.set(PROTOCOL_METADATA_KEY, String(version));
    const method = client[rpc] as unknown as (r: Req, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v?: Res) => void) => grpc.ClientUnaryCall;
    const call: grpc.ClientUnaryCall = method.call(client, request, md, { deadline: Date.now() + deadlineMs }, (e, v) => (e ? reject(e) : resolve({ reply: v!, call })));
  });
}

/**
 * Runs the handshake; resolves once both sides hold the session key. Fails with SecurityError when the
 * worker does not prove the token (nothing derived from it has been sent then), ProtocolError on a
 * version mismatch, and the gRPC error where a call fails.
 */
export async function openWorkerSession(o: OpenSessionOptions): Promise<OpenedSession> {
  const version = o.protocolVersion ?? PROTOCOL_VERSION;
  const deadlineMs = o.deadlineMs ?? 10_000;
  const coordinatorNonce = newNonce();
  const { reply: hello, call } = await unary<unknown, HelloReply>(
    o.client,
    'Hello',
    { protocol_version: version, run_id: o.runId, account: o.account, nonce: coordinatorNonce, address: o.address },
    version,
    deadlineMs,
  );
  if (hello.protocol_version !== PROTOCOL_VERSION) {
    throw new ProtocolError(protocolMismatchMessage(`worker at ${o.address} at Hello`, hello.protocol_version, PROTOCOL_VERSION, 'worker', 'coordinator'));
  }
  const transcript: HelloTranscript = {
    runId: o.runId,
    account: o.account,
    address: o.address,
    coordinatorNonce,
    workerNonce: hello.nonce,
    sessionId: hello.session_id,
    coordinatorCert: certificateFingerprint(o.tls?.cert),
    workerCert: o.tls ? peerFingerprint(call) : Buffer.alloc(0),
  };
  if (!proofMatches(workerHelloProof(o.token, transcript), hello.proof)) {
    throw new SecurityError(`the worker at ${o.address} answered Hello without proof of this run's token (or over another connection): not admitted, nothing sent to it`);
  }
  const { reply: worker } = await unary<unknown, HelloConfirmReply>(
    o.client,
    'HelloConfirm',
    { session_id: hello.session_id, proof: coordinatorHelloProof(o.token, transcript) },
    version,
    deadlineMs,
  );
  return { signer: new SessionSigner(Buffer.from(hello.session_id), sessionKey(o.token, transcript)), worker };
}
