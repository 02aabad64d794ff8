/**
 * One admitted worker as the coordinator sees it: its connection, its liveness, and promise-based
 * calls with deadlines. Every call made through a handle is cancelled when the worker leaves the pool.
 */
import type { Writable } from 'node:stream';
import { ClusterError, NextbuyError, ProtocolError } from '../../core/errors.js';
import {
  HANDED_BACK_METADATA_KEY,
  PROTOCOL_METADATA_KEY,
  PROTOCOL_VERSION,
  grpc,
  type HealthReply,
  type ScoreReply,
  type TrainingDataReply,
  type WorkerClient,
  workerMethod,
} from '../../proto/index.js';
import type { SessionSigner } from '../../proto/handshake.js';
import { ShardResults } from '../../proto/result-batch.js';
import { writeFlushed, writeMessage } from '../../proto/stream.js';
import type { TrainRoundInput, TrainRoundOutput, ValidateInput, ValidateOutput } from '../../worker/engine.js';
import { readShardPayloads, type ShardPayload } from './shard-payloads.js';

/** Room left in a gRPC message for the protobuf framing around an Arrow payload. */
const MESSAGE_MARGIN_BYTES = 64 * 1024;

/** serving: takes shards. draining: finishing its work, takes none. unreachable: its last heartbeat failed. */
export type WorkerState = 'serving' | 'draining' | 'unreachable';

/** A failed call to a worker: which worker, which rpc, the gRPC status. */
export class WorkerCallError extends ClusterError {
  constructor(
    readonly worker: string,
    readonly rpc: string,
    readonly grpcCode: grpc.status | null,
    readonly details: string,
    /** The worker was draining and gave the work back unfinished: not the work's fault. */
    readonly handedBack = false,
  ) {
    super(`worker ${worker} ${rpc} failed: ${grpcCode === null ? '' : `${grpc.status[grpcCode]}: `}${details}`);
  }

  /** The failure without the worker's name: `Score failed: INVALID_ARGUMENT: …`. */
  get withoutWorker(): string {
    return `${this.rpc} failed: ${this.grpcCode === null ? '' : `${grpc.status[this.grpcCode]}: `}${this.details}`;
  }
}

export interface CallOptions {
  /** @default none for Score and LoadTrainingData (heartbeats catch dead workers), 30 s for the others */
  deadlineMs?: number;
  signal?: AbortSignal;
}

export interface ScoreShardRequest {
  shardId: string;
  file: string;
  attempt: number;
  modelVersions: string[];
  products: string[];
  /** Payloads sent ahead of the worker's replies. */
  window: number;
  targetPayloadBytes?: number;
  signal?: AbortSignal;
  /** Called for each reply (rows scored so far) — progress, and a hook for tests. */
  onProgress?: (inputRows: number) => void;
}

export interface ScoreShardResult {
  /** The shard's results as one Arrow IPC stream of result batches (proto/result-batch.ts). */
  results: Uint8Array;
  inputRows: number;
  resultRows: number;
  bytesSent: number;
}

export interface WorkerHandleInit {
  /** Unique within the pool (a worker admitted again gets a new id). */
  id: string;
  name: string;
  address: string;
  /** The process's own id from Hello: the same across re-admissions of one process. */
  workerId: string;
  runtimes: string[];
  cores: number;
  maxMessageBytes: number;
  client: WorkerClient;
  /** Signs each call with the session's key (proto/handshake.ts). */
  signer: SessionSigner;
}

const DEFAULT_DEADLINE_MS = 30_000;

export class WorkerHandle {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly workerId: string;
  readonly runtimes: string[];
  readonly cores: number;
  readonly maxMessageBytes: number;
  state: WorkerState = 'serving';
  /** Epoch ms of the last Health answer. */
  lastHeartbeatAt = Date.now();
  lastHealth: HealthReply | null = null;
  private readonly client: WorkerClient;
  private readonly signer: SessionSigner;
  private readonly gone = new AbortController();

  constructor(init: WorkerHandleInit) {
    this.id = init.id;
    this.name = init.name;
    this.address = init.address;
    this.workerId = init.workerId;
    this.runtimes = init.runtimes;
    this.cores = init.cores;
    this.maxMessageBytes = init.maxMessageBytes;
    this.client = init.client;
    this.signer = init.signer;
  }

  /** `name (address)`, for messages. */
  get label(): string {
    return `${this.name} (${this.address})`;
  }

  /** Aborted (with the reason as a ClusterError) when the worker leaves the pool. */
  get signal(): AbortSignal {
    return this.gone.signal;
  }

  get alive(): boolean {
    return !this.gone.signal.aborted;
  }

  private metadata(rpc: string): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(PROTOCOL_METADATA_KEY, String(PROTOCOL_VERSION));
    return this.signer.sign(md, workerMethod(rpc));
  }

  private callError(rpc: string, e: unknown): Error {
    if (this.gone.signal.aborted) return this.gone.signal.reason as Error;
    const err = e as Partial<grpc.ServiceError>;
    if (typeof err.code !== 'number') return e as Error;
    const handedBack = err.metadata?.get(HANDED_BACK_METADATA_KEY)[0] === '1';
    return new WorkerCallError(this.label, rpc, err.code, err.details || err.message || 'no details', handedBack);
  }

  /** An error while sending: the shard file's own errors stay as they are (retrying cannot help), stream failures are the worker's. */
  private sendError(rpc: string, e: unknown): unknown {
    if (e instanceof NextbuyError) return e;
    const err = this.callError(rpc, e);
    return err instanceof NextbuyError ? err : new WorkerCallError(this.label, rpc, null, err.message);
  }

  /** Links a call's cancellation to the worker leaving and to the caller's signal; returns the unlink. */
  private linkCancel(cancel: () => void, signal?: AbortSignal): () => void {
    const signals = [this.gone.signal, ...(signal ? [signal] : [])];
    for (const s of signals) s.addEventListener('abort', cancel, { once: true });
    return () => signals.forEach((s) => s.removeEventListener('abort', cancel));
  }

  private unary<Req, Res>(rpc: keyof WorkerClient & string, request: Req, o: CallOptions = {}): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      if (this.gone.signal.aborted) return reject(this.gone.signal.reason);
      if (o.signal?.aborted) return reject(o.signal.reason);
      const method = this.client[rpc] as unknown as (
        req: Req,
        md: grpc.Metadata,
        opts: grpc.CallOptions,
        cb: grpc.requestCallback<Res>,
      ) => grpc.ClientUnaryCall;
      let unlink = () => {};
      const call = method.call(this.client, request, this.metadata(rpc), { deadline: Date.now() + (o.deadlineMs ?? DEFAULT_DEADLINE_MS) }, (err, res) => {
        unlink();
        if (err) reject(o.signal?.aborted ? o.signal.reason : this.callError(rpc, err));
        else resolve(res!);
      });
      unlink = this.linkCancel(() => call.cancel(), o.signal);
    });
  }

  health(deadlineMs: number): Promise<HealthReply> {
    return this.unary('Health', {}, { deadlineMs });
  }

  async loadModel(modelVersion: string, files: Map<string, Uint8Array>, o: CallOptions = {}): Promise<{ runtime: string; note: string }> {
    const total = [...files.values()].reduce((n, f) => n + f.byteLength, 0);
    if (total > this.maxMessageBytes - MESSAGE_MARGIN_BYTES) {
      throw new ProtocolError(`model ${modelVersion} is ${total} bytes, more than worker ${this.label} accepts in one message (${this.maxMessageBytes})`);
    }
    const reply = await this.unary<unknown, { runtime: string; note: string }>(
      'LoadModel',
      { model_version: modelVersion, files: Object.fromEntries([...files].map(([k, v]) => [k, Buffer.from(v.buffer, v.byteOffset, v.byteLength)])) },
      { deadlineMs: 120_000, ...o },
    );
    return { runtime: reply.runtime, note: reply.note };
  }

  async trainRound(input: TrainRoundInput, o: CallOptions = {}): Promise<TrainRoundOutput> {
    const reply = await this.unary<unknown, { weights: Buffer; examples: number; loss: number }>(
      'TrainRound',
      {
        dataset_id: input.datasetId,
        spec_json: input.specJson,
        weights: Buffer.from(input.weights.buffer, input.weights.byteOffset, input.weights.byteLength),
        round: input.round,
        local_steps: input.localSteps,
        seed: input.seed,
        shard_ids: input.shardIds,
      },
      { deadlineMs: 600_000, ...o },
    );
    return { weights: float32(reply.weights), examples: reply.examples, loss: reply.loss };
  }

  async validate(input: ValidateInput, o: CallOptions = {}): Promise<ValidateOutput> {
    const reply = await this.unary<unknown, { scores: Buffer; labels: Buffer; customer_ids: string[] }>(
      'Validate',
      {
        dataset_id: input.datasetId,
        spec_json: input.specJson,
        weights: Buffer.from(input.weights.buffer, input.weights.byteOffset, input.weights.byteLength),
        shard_ids: input.shardIds,
      },
      { deadlineMs: 600_000, ...o },
    );
    return { customerIds: reply.customer_ids, scores: float32(reply.scores), labels: new Int8Array(Uint8Array.from(reply.labels).buffer) };
  }

  /** Asks the worker to stop taking work and exit; resolves with the number of shards it handed back. */
  async drain(reason: string, o: CallOptions = {}): Promise<number> {
    this.markDraining();
    const reply = await this.unary<unknown, { handed_back: number }>('Drain', { reason }, { deadlineMs: 60_000, ...o });
    return reply.handed_back;
  }

  /** Ships one training shard file to the worker, which keeps its rows; resolves with the row count. */
  loadTrainingData(datasetId: string, shard: { id: string; file: string }, o: CallOptions & { attempt?: number } = {}): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      if (this.gone.signal.aborted) return reject(this.gone.signal.reason);
      let settled = false;
      let markOver = () => {};
      const over = new Promise<void>((r) => (markOver = r)); // a cancelled call may never flush a write
      const settle = (err: unknown, rows?: number) => {
        if (settled) return;
        settled = true;
        unlink();
        markOver();
        if (err) reject(err);
        else resolve(rows!);
      };
      const call = this.client.LoadTrainingData(
        this.metadata('LoadTrainingData'),
        o.deadlineMs === undefined ? {} : { deadline: Date.now() + o.deadlineMs },
        (err, reply?: TrainingDataReply) => settle(err ? (o.signal?.aborted ? o.signal.reason : this.callError('LoadTrainingData', err)) : null, reply?.rows),
      );
      const unlink = this.linkCancel(() => call.cancel(), o.signal);
      (async () => {
        await writeMessage(call, { header: { dataset_id: datasetId, shard_id: shard.id, attempt: o.attempt ?? 1 } });
        // No replies to count as credits here: wait for each payload to be handed to HTTP/2 instead.
        const payloads = readShardPayloads(shard.file, { maxPayloadBytes: this.maxMessageBytes - MESSAGE_MARGIN_BYTES, reuseBuffer: true });
        for await (const p of payloads) {
          if (settled) return;
          if (!(await sentOrOver(call, p, over))) return;
        }
        call.end();
      })().catch((e: unknown) => {
        call.cancel();
        settle(this.sendError('LoadTrainingData', e));
      });
    });
  }

  /** TrainParticipant's name for loadTrainingData. */
  loadShard(datasetId: string, shard: { id: string; file: string }): Promise<number> {
    return this.loadTrainingData(datasetId, shard);
  }

  /**
   * Streams one shard to the worker for scoring and collects its results. At most `window`
   * payloads are sent ahead of the worker's replies, so neither side buffers more than that.
   */
  scoreShard(r: ScoreShardRequest): Promise<ScoreShardResult> {
    return new Promise<ScoreShardResult>((resolve, reject) => {
      if (this.gone.signal.aborted) return reject(this.gone.signal.reason);
      if (r.signal?.aborted) return reject(r.signal.reason);
      const call = this.client.Score(this.metadata('Score'));
      const results = new ShardResults();
      let sent = 0;
      let replies = 0;
      let rowsSent = 0;
      let rowsScored = 0;
      let bytesSent = 0;
      let allSent = false;
      let ended = false;
      let okStatus = false;
      let settled = false;
      let wakeWriter: (() => void) | null = null;
      let markOver = () => {};
      const over = new Promise<void>((resolve) => (markOver = resolve)); // a cancelled call may never flush a write

      const settle = (err: unknown) => {
        if (settled) return;
        settled = true;
        unlink();
        markOver();
        wakeWriter?.();
        if (err) {
          call.cancel();
          reject(err);
        } else {
          resolve({ results: results.toStream(), inputRows: rowsScored, resultRows: results.rows, bytesSent });
        }
      };
      const maybeDone = () => {
        if (!ended || !okStatus || !allSent) return;
        if (rowsScored !== rowsSent) {
          settle(new WorkerCallError(this.label, 'Score', null, `returned results for ${rowsScored} of the ${rowsSent} rows of shard ${r.shardId}`));
        } else settle(null);
      };
      const unlink = this.linkCancel(() => settle(r.signal?.aborted ? r.signal.reason : this.gone.signal.reason), r.signal);

      call.on('data', (reply: ScoreReply) => {
        if (settled) return;
        try {
          if (reply.shard_id !== r.shardId || reply.attempt !== r.attempt) {
            throw new ProtocolError(`worker ${this.label} answered for shard ${reply.shard_id} attempt ${reply.attempt} on the stream of shard ${r.shardId} attempt ${r.attempt}`);
          }
          results.add(reply.arrow);
          replies++;
          rowsScored += reply.input_rows;
          r.onProgress?.(rowsScored);
          wakeWriter?.();
        } catch (e) {
          // A reply that does not decode or is tagged for another attempt: this worker's fault, retry elsewhere.
          settle(new WorkerCallError(this.label, 'Score', null, (e as Error).message));
        }
      });
      call.on('end', () => {
        ended = true;
        maybeDone();
      });
      call.on('status', (s: grpc.StatusObject) => {
        if (s.code === grpc.status.OK) {
          okStatus = true;
          maybeDone();
        }
      });
      call.on('error', (e) => settle(this.callError('Score', e)));

      (async () => {
        await writeMessage(call, { header: { shard_id: r.shardId, attempt: r.attempt, model_versions: r.modelVersions, products: r.products } });
        const payloads = readShardPayloads(r.file, { maxPayloadBytes: this.maxMessageBytes - MESSAGE_MARGIN_BYTES, targetPayloadBytes: r.targetPayloadBytes, reuseBuffer: true });
        for await (const p of payloads) {
          while (!settled && sent - replies >= r.window) await new Promise<void>((w) => (wakeWriter = w));
          wakeWriter = null;
          if (settled) return;
          if (!(await sentOrOver(call, p, over)) || settled) return;
          sent++;
          rowsSent += p.rows;
          bytesSent += p.bytes.length;
        }
        allSent = true;
        call.end();
        maybeDone();
      })().catch((e: unknown) => settle(this.sendError('Score', e)));
    });
  }

  /** Stops new work going to the worker until its next heartbeat answers (a call just found it unreachable). */
  markUnreachable(): void {
    if (this.state === 'serving') this.state = 'unreachable';
  }

  /** The worker said it is draining (it handed work back): lease it nothing more. */
  markDraining(): void {
    this.state = 'draining';
  }

  /** Marks the worker gone: cancels its calls with `reason` and closes the connection. Idempotent. */
  leave(reason: Error): void {
    if (this.gone.signal.aborted) return;
    this.gone.abort(reason);
    this.client.close();
  }
}

/**
 * Sends one payload and waits for the write's callback, after which its buffer may be reused (HTTP/2
 * reads a payload framed in place until then). False if the call was over first: the payload is then
 * abandoned, so that its buffer is never reused while a write may still read it.
 */
async function sentOrOver(call: Writable, payload: ShardPayload, over: Promise<void>): Promise<boolean> {
  const sent = await Promise.race([writeFlushed(call, { arrow: payload.bytes }).then(() => true), over.then(() => false)]);
  if (!sent) payload.abandon();
  return sent;
}

function float32(bytes: Uint8Array): Float32Array {
  return new Float32Array(Uint8Array.from(bytes).buffer);
}
