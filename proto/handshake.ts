/**
 * Proofs of the run token, one key per purpose, and the coordinator ↔ worker session handshake.
 *
 * Every key is derived from the token with HKDF-SHA256 under its own purpose label, and every MAC
 * covers a purpose label plus length-prefixed fields, so a value computed for one purpose is never
 * accepted for another (a worker's Hello answer is not a registration proof, a coordinator's is not a
 * worker's). Nobody signs bytes a stranger chose without mixing in a nonce of its own:
 *
 *   Register   worker ← RegisterChallenge: nonce_r (stateless: time, random, MAC under a process secret)
 *              worker → Register: MAC(K_register, run, address, name, nonce_r)
 *   Hello      coordinator → worker: run, account, dialled address, nonce_c          (nothing token-derived)
 *              worker → coordinator: nonce_w, session id, MAC(K_hello, "worker", transcript)
 *              coordinator → worker: HelloConfirm(session id, MAC(K_hello, "coordinator", transcript))
 *              both: K_s = MAC(K_session, transcript); transcript = run, account, address, nonce_c,
 *              nonce_w, session id, and under TLS the SHA-256 of both certificates
 *   each call  metadata: session id, counter, MAC(K_s, session id, counter, method): single use (the
 *              worker keeps a replay window per session), checked before the body is read (server-guard.ts)
 */
import { X509Certificate, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';

/** Call metadata of an authenticated call: the session id (base64) and `<counter>.<mac base64>`. */
export const SESSION_METADATA_KEY = 'nextbuy-session';
export const CALL_AUTH_METADATA_KEY = 'nextbuy-auth';

const HKDF_SALT = 'nextbuy run token v2';
type Purpose = 'register' | 'hello' | 'session';

/** Bytes of every nonce either side draws. */
export const NONCE_BYTES = 32;
const SESSION_ID_BYTES = 16;

function purposeKey(token: string, purpose: Purpose): Buffer {
  return Buffer.from(hkdfSync('sha256', token, HKDF_SALT, `nextbuy ${purpose}`, 32));
}

/** HMAC-SHA256 over a label and length-prefixed fields: no two field lists encode alike. */
function mac(key: Uint8Array, label: string, fields: readonly (string | Uint8Array)[]): Buffer {
  const h = createHmac('sha256', key);
  h.update(label);
  for (const f of fields) {
    const bytes = typeof f === 'string' ? Buffer.from(f, 'utf8') : f;
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.byteLength);
    h.update(length);
    h.update(bytes);
  }
  return h.digest();
}

/** Constant-time comparison of a received proof with the expected one. */
export function proofMatches(expected: Uint8Array, received: Uint8Array | undefined | null): boolean {
  if (!received || received.byteLength !== expected.byteLength) return false;
  return timingSafeEqual(expected, received);
}

// ---- registration -----------------------------------------------------------------------------

/** What a worker sends with Register: bound to the run, its address and name, and the coordinator's fresh challenge. */
export function registrationProof(token: string, runId: string, address: string, workerName: string, challenge: Uint8Array): Buffer {
  return mac(purposeKey(token, 'register'), 'register', [runId, address, workerName, challenge]);
}

/**
 * The coordinator's registration challenges: stateless (issue time and random bytes, authenticated
 * with a secret of this process), so strangers asking for many cost no memory.
 */
export class RegistrationChallenges {
  private readonly secret = randomBytes(32);

  constructor(
    /** How long a challenge may be answered. @default 60000 */
    private readonly validMs = 60_000,
  ) {}

  issue(now = Date.now()): Buffer {
    const body = Buffer.alloc(8 + 16);
    body.writeBigUInt64BE(BigInt(now));
    randomBytes(16).copy(body, 8);
    return Buffer.concat([body, mac(this.secret, 'challenge', [body]).subarray(0, 16)]);
  }

  /** True for a challenge this process issued less than validMs ago. */
  valid(challenge: Uint8Array | undefined, now = Date.now()): boolean {
    if (!challenge || challenge.byteLength !== 40) return false;
    const c = Buffer.from(challenge.buffer, challenge.byteOffset, challenge.byteLength);
    if (!proofMatches(mac(this.secret, 'challenge', [c.subarray(0, 24)]).subarray(0, 16), c.subarray(24))) return false;
    const age = now - Number(c.readBigUInt64BE(0));
    return age >= -5_000 && age <= this.validMs;
  }
}

// ---- Hello: the session handshake -------------------------------------------------------------

/** What both sides of a Hello agree on; each proof and the session key cover all of it. */
export interface HelloTranscript {
  runId: string;
  account: string;
  /** The address the coordinator dialled. */
  address: string;
  coordinatorNonce: Uint8Array;
  workerNonce: Uint8Array;
  sessionId: Uint8Array;
  /** SHA-256 of the coordinator's and the worker's TLS certificates; empty in plaintext. */
  coordinatorCert: Uint8Array;
  workerCert: Uint8Array;
}

function transcriptFields(t: HelloTranscript): (string | Uint8Array)[] {
  return [t.runId, t.account, t.address, t.coordinatorNonce, t.workerNonce, t.sessionId, t.coordinatorCert, t.workerCert];
}

/** The worker's Hello proof (it answers only with a nonce of its own mixed in). */
export function workerHelloProof(token: string, t: HelloTranscript): Buffer {
  return mac(purposeKey(token, 'hello'), 'hello worker', transcriptFields(t));
}

/** The coordinator's proof, sent only after the worker's has been checked. */
export function coordinatorHelloProof(token: string, t: HelloTranscript): Buffer {
  return mac(purposeKey(token, 'hello'), 'hello coordinator', transcriptFields(t));
}

/** The session key both sides derive once the handshake is done; never sent. */
export function sessionKey(token: string, t: HelloTranscript): Buffer {
  return mac(purposeKey(token, 'session'), 'session', transcriptFields(t));
}

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

export function newSessionId(): Buffer {
  return randomBytes(SESSION_ID_BYTES);
}

/** SHA-256 of a DER certificate (the TLS peer's `raw`), or of a PEM's first certificate; empty for none. */
export function certificateFingerprint(cert: Uint8Array | string | null | undefined): Buffer {
  if (!cert || cert.length === 0) return Buffer.alloc(0);
  const der = typeof cert === 'string' || looksLikePem(cert) ? new X509Certificate(Buffer.from(cert)).raw : cert;
  return createHash('sha256').update(der).digest();
}

function looksLikePem(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, 64)).toString('latin1').includes('-----BEGIN');
}

/** The peer certificate's fingerprint of a call's connection (empty in plaintext). */
export function peerFingerprint(call: { getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } } | null }): Buffer {
  return certificateFingerprint(call.getAuthContext()?.sslPeerCertificate?.raw);
}

// ---- per-call authentication ------------------------------------------------------------------

function callMac(key: Uint8Array, sessionId: Uint8Array, counter: number, method: string): Buffer {
  return mac(key, 'call', [sessionId, String(counter), method]);
}

/** The coordinator's side of a session: signs each call once. */
export class SessionSigner {
  private counter = 0;

  constructor(
    readonly sessionId: Buffer,
    private readonly key: Buffer,
  ) {}

  /** Sets the session metadata of one call of `method` (a full path, e.g. /nextbuy.v1.Worker/Score). */
  sign(md: grpc.Metadata, method: string): grpc.Metadata {
    const n = ++this.counter;
    md.set(SESSION_METADATA_KEY, this.sessionId.toString('base64'));
    md.set(CALL_AUTH_METADATA_KEY, `${n}.${callMac(this.key, this.sessionId, n, method).toString('base64')}`);
    return md;
  }
}

/** Calls of one session may arrive out of order (concurrent streams): counters this far below the highest are refused. */
const REPLAY_WINDOW = 4096;

/** The worker's side of an established session. */
export interface WorkerSession {
  id: Buffer;
  key: Buffer;
  runId: string;
  account: string;
  /** The coordinator's certificate fingerprint (empty in plaintext): every call must come over a connection with it. */
  coordinatorCert: Buffer;
  lastUsedAt: number;
  highest: number;
  seen: Set<number>;
}

interface PendingHello {
  transcript: HelloTranscript;
  expiresAt: number;
}

export interface SessionTableOptions {
  token: string;
  /** Handshakes waiting for their HelloConfirm (a few hundred bytes each). @default 256 (oldest dropped) */
  maxPending?: number;
  /** A HelloConfirm must come within this. @default 10000 */
  pendingMs?: number;
  /** Established sessions kept. @default 16 (least recently used dropped) */
  maxSessions?: number;
  /** A session unused this long is forgotten. @default 600000 */
  idleMs?: number;
}

/** Why a call's session metadata was refused; never says more than that to the caller. */
export type CallRefusal = 'no session' | 'bad proof' | 'replayed' | 'other connection';

/** The worker's handshakes and sessions, in memory, bounded. */
export class SessionTable {
  private readonly pending = new Map<string, PendingHello>();
  private readonly sessions = new Map<string, WorkerSession>();
  private readonly maxPending: number;
  private readonly pendingMs: number;
  private readonly maxSessions: number;
  private readonly idleMs: number;

  constructor(private readonly o: SessionTableOptions) {
    this.maxPending = o.maxPending ?? 256;
    this.pendingMs = o.pendingMs ?? 10_000;
    this.maxSessions = o.maxSessions ?? 16;
    this.idleMs = o.idleMs ?? 600_000;
  }

  /** Step 1 (Hello): draws the worker's nonce and session id; returns the transcript and the worker's proof. */
  begin(t: Omit<HelloTranscript, 'workerNonce' | 'sessionId'>, now = Date.now()): { workerNonce: Buffer; sessionId: Buffer; proof: Buffer } {
    for (const [id, p] of this.pending) if (p.expiresAt < now) this.pending.delete(id);
    for (const id of this.pending.keys()) {
      if (this.pending.size < this.maxPending) break;
      this.pending.delete(id);
    }
    const workerNonce = newNonce();
    const sessionId = newSessionId();
    const transcript: HelloTranscript = { ...t, workerNonce, sessionId };
    this.pending.set(sessionId.toString('base64'), { transcript, expiresAt: now + this.pendingMs });
    return { workerNonce, sessionId, proof: workerHelloProof(this.o.token, transcript) };
  }

  /** The handshake a HelloConfirm names, if still pending and over the same connection's certificate. */
  pendingHello(sessionId: Uint8Array | undefined, coordinatorCert: Buffer, now = Date.now()): HelloTranscript | null {
    if (!sessionId) return null;
    const p = this.pending.get(Buffer.from(sessionId).toString('base64'));
    if (!p || p.expiresAt < now || !coordinatorCert.equals(p.transcript.coordinatorCert)) return null;
    return p.transcript;
  }

  /** Step 2 (HelloConfirm): checks the coordinator's proof; on success the session is established. */
  confirm(t: HelloTranscript, proof: Uint8Array | undefined, now = Date.now()): WorkerSession | null {
    const id = Buffer.from(t.sessionId).toString('base64');
    this.pending.delete(id); // one try per handshake
    if (!proofMatches(coordinatorHelloProof(this.o.token, t), proof)) return null;
    while (this.sessions.size >= this.maxSessions) this.sessions.delete(this.leastRecentlyUsed()!);
    const session: WorkerSession = {
      id: Buffer.from(t.sessionId),
      key: sessionKey(this.o.token, t),
      runId: t.runId,
      account: t.account,
      coordinatorCert: Buffer.from(t.coordinatorCert),
      lastUsedAt: now,
      highest: 0,
      seen: new Set(),
    };
    this.sessions.set(id, session);
    return session;
  }

  /** Checks one call's session metadata: the session, the MAC over its counter and method, no replay. */
  verify(md: grpc.Metadata, method: string, peerCert: Buffer, now = Date.now()): WorkerSession | CallRefusal {
    const id = md.get(SESSION_METADATA_KEY)[0];
    const auth = md.get(CALL_AUTH_METADATA_KEY)[0];
    if (typeof id !== 'string' || typeof auth !== 'string') return 'no session';
    const s = this.sessions.get(id);
    if (!s || now - s.lastUsedAt > this.idleMs) return 'no session';
    if (!s.coordinatorCert.equals(peerCert)) return 'other connection';
    const dot = auth.indexOf('.');
    const counter = Number(auth.slice(0, dot));
    if (dot < 1 || !Number.isSafeInteger(counter) || counter < 1) return 'bad proof';
    if (!proofMatches(callMac(s.key, s.id, counter, method), Buffer.from(auth.slice(dot + 1), 'base64'))) return 'bad proof';
    if (counter <= s.highest - REPLAY_WINDOW || s.seen.has(counter)) return 'replayed';
    s.seen.add(counter);
    if (counter > s.highest) s.highest = counter;
    if (s.seen.size > 2 * REPLAY_WINDOW) for (const n of s.seen) if (n <= s.highest - REPLAY_WINDOW) s.seen.delete(n);
    s.lastUsedAt = now;
    return s;
  }

  /** Forgets every session not of `runId`/`account` (a static worker taken over by another run). */
  keepOnly(runId: string, account: string): void {
    for (const [id, s] of this.sessions) if (s.runId !== runId || s.account !== account) this.sessions.delete(id);
  }

  private leastRecentlyUsed(): string | undefined {
    let oldest: [string, number] | undefined;
    for (const [id, s] of this.sessions) if (!oldest || s.lastUsedAt < oldest[1]) oldest = [id, s.lastUsedAt];
    return oldest?.[0];
  }
}
