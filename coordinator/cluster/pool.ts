/**
 * The live workers of a run. Admission dials a registered worker, runs the session handshake
 * (proto/session.ts: protocol version, the worker's proof of the token, then the coordinator's), and adds it; heartbeats (Health every heartbeatTimeout/3) decide who stays.
 * A worker silent for heartbeatTimeoutMs is presumed dead: it leaves, its calls are cancelled, its
 * connection closed. It can only come back by registering again, as a new member.
 */
import { ClusterError, NextbuyError, ProtocolError, SecurityError } from '../../core/errors.js';
import { formatDuration } from '../../core/duration.js';
import { createWorkerClient, grpc } from '../../proto/index.js';
import { channelCredentials, type TlsMaterial } from '../../proto/credentials.js';
import { openWorkerSession, type OpenedSession } from '../../proto/session.js';
import { WorkerHandle } from './worker-handle.js';

export interface PoolOptions {
  runId: string;
  account: string;
  token: string;
  /** A worker silent this long is presumed dead. */
  heartbeatTimeoutMs: number;
  /** Deadline of the Hello call at admission. @default 10000 */
  helloTimeoutMs?: number;
  /** Structured log sink. @default none */
  log?: (event: string, fields?: Record<string, unknown>) => void;
  /** Mutual TLS material for dialling workers (and for the registration server). @default none: plaintext */
  tls?: TlsMaterial | null;
}

export type LeaveCause = 'dead' | 'drained' | 'removed' | 'closed';

export type PoolEvent =
  | { type: 'joined'; worker: WorkerHandle }
  | { type: 'left'; worker: WorkerHandle; cause: LeaveCause; reason: string }
  | { type: 'rejected'; address: string; name: string; reason: string };

/** Largest handshake reply the coordinator reads from a peer not yet authenticated. */
const HANDSHAKE_MAX_MESSAGE_BYTES = 16 * 1024;

/** How many rejected registrations the pool remembers for error messages. */
const REMEMBERED_REJECTIONS = 10;

export class WorkerPool {
  private readonly members = new Map<string, WorkerHandle>();
  private readonly listeners = new Set<(e: PoolEvent) => void>();
  private readonly heartbeatsInFlight = new Set<string>();
  private readonly rejections: string[] = [];
  private readonly departures: string[] = [];
  private readonly timer: NodeJS.Timeout;
  private seq = 0;
  private closed = false;

  constructor(readonly options: PoolOptions) {
    this.timer = setInterval(() => this.beat(), this.heartbeatIntervalMs);
    this.timer.unref();
  }

  get heartbeatIntervalMs(): number {
    return Math.max(50, Math.floor(this.options.heartbeatTimeoutMs / 3));
  }

  /** Live members, in admission order. */
  workers(): WorkerHandle[] {
    return [...this.members.values()];
  }

  /** Members that can take work now: serving and answering heartbeats. */
  ready(): WorkerHandle[] {
    return this.workers().filter((w) => w.state === 'serving');
  }

  get(id: string): WorkerHandle | undefined {
    return this.members.get(id);
  }

  /** Subscribes to joins, departures and rejected registrations; returns the unsubscribe. */
  on(listener: (e: PoolEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: PoolEvent): void {
    for (const l of [...this.listeners]) l(e);
  }

  private log(event: string, fields?: Record<string, unknown>): void {
    this.options.log?.(event, fields);
  }

  /** Recent refusals (wrong version, bad proof, failed Hello), newest last: for error messages. */
  recentRejections(): string[] {
    return [...this.rejections];
  }

  /** Recent departures, newest last. */
  recentDepartures(): string[] {
    return [...this.departures];
  }

  /** Records a refused registration (the registration server calls it too). */
  reject(address: string, name: string, reason: string): void {
    this.rejections.push(`${name} (${address}): ${reason}`);
    if (this.rejections.length > REMEMBERED_REJECTIONS) this.rejections.shift();
    this.log('rejected', { address, name, reason });
    this.emit({ type: 'rejected', address, name, reason });
  }

  /**
   * Dials a worker, checks it with Hello and adds it. The same process registering twice while it
   * is still a member is admitted once; a new process at a member's address replaces it.
   */
  async admit(address: string, name: string): Promise<WorkerHandle> {
    if (this.closed) throw new ClusterError(`worker pool of run ${this.options.runId} is closed; ${name} (${address}) was not admitted`);
    const tls = this.options.tls ?? null;
    const client = createWorkerClient(address, channelCredentials(tls));
    // The handshake on a connection of its own that reads small messages only: a peer that has proven nothing cannot make us buffer much.
    const handshake = createWorkerClient(address, channelCredentials(tls), HANDSHAKE_MAX_MESSAGE_BYTES);
    let session: OpenedSession;
    try {
      session = await openWorkerSession({
        client: handshake,
        address,
        runId: this.options.runId,
        account: this.options.account,
        token: this.options.token,
        tls,
        deadlineMs: this.options.helloTimeoutMs ?? 10_000,
      });
    } catch (e) {
      handshake.close();
      client.close();
      const err = toAdmissionError(e, name, address);
      this.reject(address, name, err.message);
      throw err;
    }

    handshake.close();
    for (const m of this.members.values()) {
      if (m.address !== address) continue;
      if (m.workerId === session.worker.worker_id) {
        client.close();
        return m; // a repeated Register of a current member
      }
      this.remove(m.id, `a new worker process registered at its address ${address}`, 'removed');
    }
    const worker = new WorkerHandle({
      id: `w${++this.seq}`,
      name,
      address,
      workerId: session.worker.worker_id,
      runtimes: session.worker.runtimes,
      cores: session.worker.cores,
      maxMessageBytes: Number(session.worker.max_message_bytes) || 4 * 1024 * 1024,
      client,
      signer: session.signer,
    });
    this.members.set(worker.id, worker);
    this.log('joined', { id: worker.id, name, address, workerId: worker.workerId, runtimes: worker.runtimes });
    this.emit({ type: 'joined', worker });
    return worker;
  }

  /** Takes a worker out of the pool, cancelling its calls. */
  remove(id: string, reason: string, cause: LeaveCause = 'removed'): void {
    const worker = this.members.get(id);
    if (!worker) return;
    this.members.delete(id);
    this.heartbeatsInFlight.delete(id);
    worker.leave(new ClusterError(`worker ${worker.label} left the pool: ${reason}`));
    this.departures.push(`${worker.label}: ${reason}`);
    if (this.departures.length > REMEMBERED_REJECTIONS) this.departures.shift();
    this.log('left', { id, name: worker.name, cause, reason });
    this.emit({ type: 'left', worker, cause, reason });
  }

  private beat(): void {
    const now = Date.now();
    const timeout = this.options.heartbeatTimeoutMs;
    for (const w of this.workers()) {
      if (now - w.lastHeartbeatAt > timeout) {
        this.remove(w.id, `presumed dead: no heartbeat answer within ${formatDuration(timeout)}`, 'dead');
        continue;
      }
      if (this.heartbeatsInFlight.has(w.id)) continue;
      this.heartbeatsInFlight.add(w.id);
      w.health(this.heartbeatIntervalMs).then(
        (h) => {
          this.heartbeatsInFlight.delete(w.id);
          if (!w.alive) return;
          w.lastHeartbeatAt = Date.now();
          w.lastHealth = h;
          w.state = h.state === 'DRAINING' ? 'draining' : 'serving';
        },
        (e: unknown) => {
          this.heartbeatsInFlight.delete(w.id);
          if (!w.alive) return;
          const code = (e as { grpcCode?: number }).grpcCode;
          // A draining worker that stops answering has exited as it said it would.
          if (w.state === 'draining' && code === grpc.status.UNAVAILABLE) {
            this.remove(w.id, 'drained and exited', 'drained');
            return;
          }
          if (code === grpc.status.FAILED_PRECONDITION || code === grpc.status.UNAUTHENTICATED) {
            this.remove(w.id, (e as Error).message, 'removed');
            return;
          }
          w.state = 'unreachable';
        },
      );
    }
  }

  /** Resolves once `count` workers are ready; rejects with a ClusterError after `timeoutMs`. */
  waitForWorkers(count: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (this.ready().length >= count) {
          done();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new ClusterError(this.describeShortfall(count, timeoutMs)));
      }, timeoutMs);
      const onAbort = () => {
        done();
        reject(signal!.reason);
      };
      const unsubscribe = this.on(() => check());
      const poll = setInterval(check, this.heartbeatIntervalMs); // state changes come with heartbeats
      const done = () => {
        clearTimeout(timer);
        clearInterval(poll);
        unsubscribe();
        signal?.removeEventListener('abort', onAbort);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      check();
    });
  }

  /** Why fewer than `count` workers are here, with what the pool saw. */
  describeShortfall(count: number, waitedMs: number): string {
    const parts = [`${this.ready().length} of ${count} workers ready after ${formatDuration(waitedMs)} for run ${this.options.runId}`];
    if (this.rejections.length) parts.push(`refused registrations: ${this.rejections.join('; ')}`);
    if (this.departures.length) parts.push(`workers that left: ${this.departures.join('; ')}`);
    if (!this.rejections.length && !this.departures.length) parts.push('no worker registered: check that workers can reach the coordinator\'s registration address');
    return parts.join('. ');
  }

  /** Asks every member to drain and exit (best effort), then closes the pool. */
  async shutdownWorkers(reason: string, deadlineMs = 30_000): Promise<void> {
    await Promise.allSettled(this.workers().map((w) => w.drain(reason, { deadlineMs })));
    this.close();
  }

  /** Stops heartbeats and closes every connection. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    for (const w of this.workers()) this.remove(w.id, 'the pool was closed', 'closed');
    this.listeners.clear();
  }
}

function toAdmissionError(e: unknown, name: string, address: string): NextbuyError {
  if (e instanceof NextbuyError) return e;
  const err = e as Partial<grpc.ServiceError>;
  const details = err.details || err.message || String(e);
  if (err.code === grpc.status.FAILED_PRECONDITION) return new ProtocolError(details);
  if (err.code === grpc.status.PERMISSION_DENIED || err.code === grpc.status.UNAUTHENTICATED) {
    return new SecurityError(`worker ${name} (${address}) refused the handshake: ${details}`);
  }
  return new ClusterError(`cannot reach worker ${name} at ${address} for Hello: ${details}`, { cause: e });
}
