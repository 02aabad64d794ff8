/**
 * Transport credentials and the run token's proofs. Plaintext on loopback for now; mutual TLS slots
 * in by changing the two credential functions below and nothing else.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';

/** Credentials every coordinator → worker and worker → coordinator channel is created with. */
export function channelCredentials(): grpc.ChannelCredentials {
  return grpc.credentials.createInsecure();
}

/** Credentials every nextbuy gRPC server (worker, registration) binds with. */
export function serverCredentials(): grpc.ServerCredentials {
  return grpc.ServerCredentials.createInsecure();
}

function hmac(token: string, ...parts: (string | Uint8Array)[]): Buffer {
  const h = createHmac('sha256', token);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** What a worker sends with Register: HMAC-SHA256(token, run_id + address). */
export function registrationProof(token: string, runId: string, address: string): Buffer {
  return hmac(token, runId + address);
}

/** What a worker answers Hello's nonce with: HMAC-SHA256(token, nonce). */
export function nonceProof(token: string, nonce: Uint8Array): Buffer {
  return hmac(token, nonce);
}

/**
 * What the coordinator sends as call metadata so a worker serves only holders of the token.
 * A bearer value, replayable by anyone who can read the plaintext traffic: TLS makes it private.
 */
export function coordinatorBearer(token: string): string {
  return hmac(token, 'nextbuy-coordinator').toString('base64');
}

/** Constant-time comparison of a received proof with the expected one. */
export function proofMatches(expected: Uint8Array, received: Uint8Array | undefined | null): boolean {
  if (!received || received.byteLength !== expected.byteLength) return false;
  return timingSafeEqual(expected, received);
}
