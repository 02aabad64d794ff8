/**
 * The shard scheduler: leases shards to ready workers, at most `inFlightPerWorker` at a time each
 * (a p-queue per worker), and re-leases a failed attempt elsewhere after a backoff. Exactly one
 * attempt per shard is accepted; attempts whose lease was cancelled are discarded when they end.
 *
 * A shard's life: pending → leased (attempt n on worker w) → accepted, or back to pending after
 * `Backoff.nextDelayMs()` when the attempt fails, its worker dies or hangs (the pool's heartbeats
 * say so), or the worker hands it back while draining (no backoff, not counted as a failure).
 */
import PQueue from 'p-queue';
import { Backoff } from '../../core/backoff.js';
import { formatDuration } from '../../core/duration.js';
import { ClusterError, UsageError } from '../../core/errors.js';
import { WorkerCallError, type WorkerHandle, type WorkerPool } from '../cluster/index.js';
import { grpc } from '../../proto/index.js';
import { compileScheduleOptions, type CompiledScheduleOptions, type ScheduleOptions, type ShardRunSummary, type ShardTask, type ShardWork } from './options.js';

/**
 * grpc-js's words for a call that never reached the worker's handler: no connection, or a stream the
 * server refused unprocessed (HTTP/2 REFUSED_STREAM, sent by a server shutting down after a drain).
 */
const NEVER_REACHED = /No connection established|ECONNREFUSED|Stream refused by server/;

interface AttemptRecord {
  attempt: number;
  worker: string;
  error: string;
  /** False for hand-backs from a draining worker. */
  counted: boolean;
}

interface ShardState {
  task: ShardTask;
  index: number;
  attempts: AttemptRecord[];
  /** Attempts started (the next attempt number is this + 1). */
  started: number;
  /** Worker process ids (Hello's worker_id) this shard failed on. */
  failedOn: Set<string>;
  done: boolean;
  lease: Lease | null;
  /** Not to be leased before this epoch ms (backoff). */
  notBefore: number;
  backoff: Backoff;
}

interface Lease {
  shard: ShardState;
  worker: WorkerHandle;
  attempt: number;
  abort: AbortController;
  /** Set when the scheduler cancels the lease (worker left, run over): its result must be discarded. */
  cancelReason: string | null;
}

/**
 * Runs `work` over every shard on the pool's workers; resolves when every shard is accepted, rejects
 * with a ClusterError when a shard failed on maxAttemptsPerShard different workers or no worker was
 * ready for noWorkerTimeoutMs, and with the error itself for unreadable shard files or a failing callback.
 */
export function runShards(pool: WorkerPool, shards: ShardTask[], work: ShardWork, options: ScheduleOptions): Promise<ShardRunSummary> {
  return new ShardRun(pool, shards, work, compileScheduleOptions(options)).run();
}

class ShardRun {
  private readonly shards: ShardState[];
  private readonly leases = new Map<string, Set<Lease>>();
  private readonly queues = new Map<string, PQueue>();
  /** Per worker: true once prepared, a promise while preparing. */
  private readonly prepared = new Map<string, true | Promise<void>>();
  private readonly unusable = new Set<string>();
  private readonly unusableReasons: string[] = [];
  private readonly startedAt = Date.now();
  private readonly summary: ShardRunSummary;
  private accepted = 0;
  private finished = false;
  private wakeTimer: NodeJS.Timeout | null = null;
  private wakeAt = Infinity;
  private noWorkerTimer: NodeJS.Timeout | null = null;
  private unsubscribe: () => void = () => {};
  private onAbort: () => void = () => {};
  private onStop: () => void = () => {};
  /** Set by a graceful stop: nothing more is leased; the run ends once in-flight shards end or the grace runs out. */
  private stopping: { reason: unknown; timer: NodeJS.Timeout } | null = null;
  private settle!: { resolve: (s: ShardRunSummary) => void; reject: (e: unknown) => void };

  constructor(
    private readonly pool: WorkerPool,
    tasks: ShardTask[],
    private readonly work: ShardWork,
    private readonly o: CompiledScheduleOptions,
  ) {
    const ids = new Set<string>();
    for (const t of tasks) {
      if (ids.has(t.id)) throw new UsageError(`shard id ${t.id} appears twice in the shard list`);
      ids.add(t.id);
    }
    this.shards = tasks.map((task, index) => ({
      task,
      index,
      attempts: [],
      started: 0,
      failedOn: new Set(),
      done: false,
      lease: null,
      notBefore: 0,
      backoff: new Backoff(o.backoff),
    }));
    this.summary = { shards: tasks.length, attempts: 0, reLeased: 0, discarded: 0, rowsSent: 0, bytesSent: 0, resultRows: 0, ms: 0, byWorker: {} };
  }

  run(): Promise<ShardRunSummary> {
    return new Promise<ShardRunSummary>((resolve, reject) => {
      this.settle = { resolve, reject };
      if (this.shards.length === 0) return this.complete();
      const signal = this.o.signal;
      if (signal?.aborted) return this.fail(signal.reason);
      this.onAbort = () => this.fail(signal!.reason);
      signal?.addEventListener('abort', this.onAbort, { once: true });
      const stop = this.o.stopSignal;
      this.onStop = () => this.beginStop(stop!.reason);
      if (stop?.aborted) return this.fail(stop.reason);
      stop?.addEventListener('abort', this.onStop, { once: true });
      this.unsubscribe = this.pool.on((e) => {
        if (e.type === 'left') this.workerLeft(e.worker, e.reason);
        if (e.type !== 'rejected') this.pump();
      });
      this.pump();
    });
  }

  private pending(): ShardState[] {
    return this.shards.filter((s) => !s.done && s.lease === null);
  }

  private load(worker: WorkerHandle): number {
    return this.leases.get(worker.id)?.size ?? 0;
  }

  /** Fills every ready worker's free slots, one shard per worker per round so work spreads evenly. */
  private pump(): void {
    if (this.finished) return;
    if (this.stopping) {
      if (this.inFlight() === 0) this.fail(this.stopping.reason);
      return;
    }
    const ready = this.pool.ready().filter((w) => !this.unusable.has(w.id));
    const waiting = this.pending();
    if (waiting.length === 0) return this.clearNoWorkerTimer();
    if (ready.length === 0) return this.startNoWorkerTimer(waiting.length);
    this.clearNoWorkerTimer();

    const now = Date.now();
    const usable = ready.filter((w) => this.isPrepared(w));
    for (let assigned = true; assigned; ) {
      assigned = false;
      for (const w of usable) {
        if (this.load(w) >= this.o.inFlightPerWorker) continue;
        const shard = this.pick(w, ready, now);
        if (!shard) continue;
        this.startLease(shard, w);
        assigned = true;
      }
    }
    const next = Math.min(...this.pending().map((s) => s.notBefore).filter((t) => t > now));
    if (Number.isFinite(next) && next < this.wakeAt) {
      if (this.wakeTimer) clearTimeout(this.wakeTimer);
      this.wakeAt = next;
      this.wakeTimer = setTimeout(() => {
        this.wakeTimer = null;
        this.wakeAt = Infinity;
        this.pump();
      }, next - now);
    }
  }

  /** The first pending shard this worker may take now: not backing off, and not failed on it unless every ready worker has failed it. */
  private pick(worker: WorkerHandle, ready: WorkerHandle[], now: number): ShardState | undefined {
    for (const s of this.shards) {
      if (s.done || s.lease !== null || s.notBefore > now) continue;
      if (!s.failedOn.has(worker.workerId) || ready.every((r) => s.failedOn.has(r.workerId))) return s;
    }
    return undefined;
  }

  /** Runs work.prepare once per worker; false until it has succeeded. */
  private isPrepared(worker: WorkerHandle): boolean {
    const state = this.prepared.get(worker.id);
    if (state === true) return true;
    if (state) return false;
    if (!this.work.prepare) {
      this.prepared.set(worker.id, true);
      return true;
    }
    const p = this.work.prepare(worker, worker.signal).then(
      () => {
        this.prepared.set(worker.id, true);
        this.pump();
      },
      (e: unknown) => {
        this.unusable.add(worker.id);
        this.unusableReasons.push(`${worker.label}: ${(e as Error).message}`);
        this.o.onEvent({ type: 'worker-unusable', worker: worker.label, error: (e as Error).message });
        this.pump();
      },
    );
    this.prepared.set(worker.id, p);
    return false;
  }

  private queueFor(worker: WorkerHandle): PQueue {
    let q = this.queues.get(worker.id);
    if (!q) {
      q = new PQueue({ concurrency: this.o.inFlightPerWorker });
      this.queues.set(worker.id, q);
    }
    return q;
  }

  private startLease(shard: ShardState, worker: WorkerHandle): void {
    const lease: Lease = { shard, worker, attempt: ++shard.started, abort: new AbortController(), cancelReason: null };
    shard.lease = lease;
    let set = this.leases.get(worker.id);
    if (!set) this.leases.set(worker.id, (set = new Set()));
    set.add(lease);
    this.summary.attempts++;
    this.o.onEvent({ type: 'lease', shardId: shard.task.id, attempt: lease.attempt, worker: worker.name });
    void this.queueFor(worker).add(() => this.runLease(lease));
  }

  private async runLease(lease: Lease): Promise<void> {
    const { shard, worker } = lease;
    const signal = lease.abort.signal;
    try {
      if (this.work.kind === 'score') {
        const r = await worker.scoreShard({
          shardId: shard.task.id,
          file: shard.task.file,
          attempt: lease.attempt,
          modelVersions: this.work.modelVersions,
          products: this.work.products,
          window: this.o.streamWindow,
          targetPayloadBytes: this.o.targetPayloadBytes,
          signal,
          onProgress: (rows) => this.o.onEvent({ type: 'progress', shardId: shard.task.id, attempt: lease.attempt, worker: worker.name, rows }),
        });
        if (this.accept(lease, r.inputRows)) {
          this.summary.rowsSent += r.inputRows;
          this.summary.bytesSent += r.bytesSent;
          this.summary.resultRows += r.resultRows;
          await this.deliver(() => (this.work as Extract<ShardWork, { kind: 'score' }>).onResult(shard.task.id, lease.attempt, r.results));
        }
      } else {
        const rows = await worker.loadTrainingData(this.work.datasetId, shard.task, { signal, attempt: lease.attempt });
        if (this.accept(lease, rows)) {
          this.summary.rowsSent += rows;
          await this.deliver(() => (this.work as Extract<ShardWork, { kind: 'training-data' }>).onLoaded(shard.task.id, worker, rows));
        }
      }
    } catch (e) {
      this.attemptFailed(lease, e);
    } finally {
      this.leases.get(worker.id)?.delete(lease);
      if (shard.lease === lease) shard.lease = null;
      this.pump();
    }
  }

  /** Decides whether a finished attempt is the shard's one accepted attempt. */
  private accept(lease: Lease, rows: number): boolean {
    const { shard, worker } = lease;
    if (this.finished) return false;
    if (lease.cancelReason !== null || shard.done || shard.lease !== lease) {
      this.summary.discarded++;
      const why = lease.cancelReason ?? 'the shard was already accepted from another attempt';
      this.o.onEvent({ type: 'discarded', shardId: shard.task.id, attempt: lease.attempt, worker: worker.name, why });
      return false;
    }
    shard.done = true;
    this.summary.byWorker[worker.name] = (this.summary.byWorker[worker.name] ?? 0) + 1;
    this.o.onEvent({ type: 'accepted', shardId: shard.task.id, attempt: lease.attempt, worker: worker.name, rows });
    return true;
  }

  /** Hands an accepted shard to the caller's callback; the run ends once every callback has settled. */
  private async deliver(callback: () => void | Promise<void>): Promise<void> {
    try {
      await callback();
    } catch (e) {
      this.fail(e);
      return;
    }
    if (++this.accepted === this.shards.length) this.complete();
  }

  private attemptFailed(lease: Lease, e: unknown): void {
    if (this.finished) return;
    const { shard, worker } = lease;
    // Not a worker's fault (unreadable shard file, a batch too big for any message): retrying cannot help.
    if (!(e instanceof ClusterError) && lease.cancelReason === null) {
      this.fail(e);
      return;
    }
    // Handed back by a draining worker, or never delivered (the worker had already exited: the connection
    // was refused): the shard was not processed, so the attempt does not count against it.
    const handedBack =
      lease.cancelReason === null &&
      e instanceof WorkerCallError &&
      (e.handedBack || (e.grpcCode === grpc.status.UNAVAILABLE && NEVER_REACHED.test(e.details)));
    // A dropped connection (process killed, network cut): lease nothing more there until a heartbeat answers.
    if (e instanceof WorkerCallError && e.grpcCode === grpc.status.UNAVAILABLE && !handedBack) worker.markUnreachable();
    if (handedBack && e.handedBack) worker.markDraining();
    const error = lease.cancelReason ?? (e instanceof WorkerCallError ? e.withoutWorker : (e as Error).message);
    shard.attempts.push({ attempt: lease.attempt, worker: worker.label, error, counted: !handedBack });
    if (!handedBack) shard.failedOn.add(worker.workerId);
    const counted = shard.attempts.filter((a) => a.counted).length;
    if (shard.failedOn.size >= this.o.maxAttemptsPerShard || counted >= this.o.maxTotalAttemptsPerShard) {
      this.fail(new ClusterError(this.describeShardFailure(shard)));
      return;
    }
    const retryInMs = handedBack ? 0 : shard.backoff.nextDelayMs();
    shard.notBefore = Date.now() + retryInMs;
    this.summary.reLeased++;
    this.o.onEvent({ type: 'attempt-failed', shardId: shard.task.id, attempt: lease.attempt, worker: worker.name, error, retryInMs, counted: !handedBack });
  }

  private describeShardFailure(shard: ShardState): string {
    const counted = shard.attempts.filter((a) => a.counted);
    const head =
      shard.failedOn.size >= this.o.maxAttemptsPerShard
        ? `shard ${shard.task.id} (${shard.task.file}) failed on ${shard.failedOn.size} different workers`
        : `shard ${shard.task.id} (${shard.task.file}) failed ${counted.length} times on ${shard.failedOn.size} worker(s), with no other worker to try`;
    const attempts = shard.attempts.map((a) => `attempt ${a.attempt} on ${a.worker}${a.counted ? '' : ' (handed back while draining)'}: ${a.error}`);
    return `${head}; the run stops. ${attempts.join('; ')}`;
  }

  private inFlight(): number {
    let n = 0;
    for (const set of this.leases.values()) n += set.size;
    return n;
  }

  private beginStop(reason: unknown): void {
    if (this.finished || this.stopping) return;
    const timer = setTimeout(() => this.fail(reason), this.o.stopGraceMs);
    timer.unref();
    this.stopping = { reason, timer };
    this.pump();
  }

  private workerLeft(worker: WorkerHandle, reason: string): void {
    for (const lease of this.leases.get(worker.id) ?? []) {
      lease.cancelReason = `worker ${worker.label} left the pool (${reason})`;
      lease.abort.abort(new ClusterError(lease.cancelReason));
    }
    this.prepared.delete(worker.id);
    this.queues.delete(worker.id);
  }

  private startNoWorkerTimer(pending: number): void {
    if (this.noWorkerTimer) return;
    this.o.onEvent({ type: 'waiting-for-workers', pendingShards: pending });
    this.noWorkerTimer = setTimeout(() => {
      this.noWorkerTimer = null;
      if (this.pending().length === 0 || this.pool.ready().some((w) => !this.unusable.has(w.id))) return this.pump();
      const notDone = this.shards.filter((s) => !s.done).length;
      this.fail(
        new ClusterError(
          `no worker was ready for ${formatDuration(this.o.noWorkerTimeoutMs)}; ${notDone} of ${this.shards.length} shards not done. ` +
            (this.unusableReasons.length ? `Workers whose preparation failed: ${this.unusableReasons.join('; ')}. ` : '') +
            this.pool.describeShortfall(1, this.o.noWorkerTimeoutMs),
        ),
      );
    }, this.o.noWorkerTimeoutMs);
  }

  private clearNoWorkerTimer(): void {
    if (this.noWorkerTimer) clearTimeout(this.noWorkerTimer);
    this.noWorkerTimer = null;
  }

  private stop(): void {
    this.finished = true;
    this.clearNoWorkerTimer();
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.unsubscribe();
    this.o.signal?.removeEventListener('abort', this.onAbort);
    this.o.stopSignal?.removeEventListener('abort', this.onStop);
    if (this.stopping) clearTimeout(this.stopping.timer);
  }

  private complete(): void {
    if (this.finished) return;
    this.stop();
    this.summary.ms = Date.now() - this.startedAt;
    this.settle.resolve(this.summary);
  }

  private fail(e: unknown): void {
    if (this.finished) return;
    this.stop();
    for (const set of this.leases.values()) {
      for (const lease of set) {
        lease.cancelReason ??= 'the run stopped';
        lease.abort.abort(e);
      }
    }
    this.settle.reject(e);
  }
}
