/**
 * The worker's gRPC server: speaks the Worker service of proto/nextbuy.proto over a WorkerEngine.
 * It decodes Arrow payloads, hands dense batches to the engine and streams Arrow results back.
 * Bad input fails the call (INVALID_ARGUMENT), never the process. Every call but the session
 * handshake (Hello, HelloConfirm: proto/handshake.ts) needs a session, checked on its metadata before
 * its body is read (proto/server-guard.ts).
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { NextbuyError, ProtocolError, SecurityError } from '../core/errors.js';
import {
  HANDED_BACK_METADATA_KEY,
  MAX_MESSAGE_BYTES,
  PROTOCOL_METADATA_KEY,
  PROTOCOL_VERSION,
  PROTOCOL_MISMATCH_STATUS,
  REPLY_HEADROOM,
  allowInPlaceFraming,
  createServer,
  grpc,
  protocolMismatchMessage,
  raiseSessionWindows,
  workerServiceReceivingInto,
  type ScoreHeader,
  type ScoreReply,
  type ScoreRequest,
  type TrainingDataHeader,
  type TrainingDataReply,
  type TrainingDataRequest,
  type WorkerHandlers,
  shutdownServer,
  workerMethod,
} from '../proto/index.js';
import { processTlsMaterial, serverCredentials } from '../proto/credentials.js';
import { NONCE_BYTES, SessionTable, certificateFingerprint, peerFingerprint } from '../proto/handshake.js';
import { createServerGuard } from '../proto/server-guard.js';
import { PayloadBuffers } from '../proto/payload-buffers.js';
import { receiveBuffers, receiveLargeMessagesPooled } from '../proto/pooled-receive.js';
import { encodeResults, type ScoredRows } from '../proto/result-batch.js';
import { customerIdBytesOf, decodeBatches, toSequenceBatch, type SequenceBatch } from '../proto/shard-batch.js';
import { StreamReader, writeMessage } from '../proto/stream.js';
import type { WorkerEngine } from './engine.js';
import { lazySequenceBatch } from './lazy-batch.js';

export const DEFAULT_DRAIN_GRACE_MS = 20_000;

export interface WorkerServerOptions {
  engine: WorkerEngine;
  /** The run token the coordinator and this worker share. */
  token: string;
  /**
   * Answer Hello only for this run; null serves any run whose coordinator holds the token (static
   * workers), one run and account at a time: see bindingReleaseMs.
   */
  runId: string | null;
  /**
   * A static worker (runId null) serves the run that completed a handshake with it, and refuses every
   * other run until that run drains it (the process then exits) or has made no call for this long.
   * @default 60000
   */
  bindingReleaseMs?: number;
  /** Shown in logs and errors. */
  name: string;
  /** @default '127.0.0.1' */
  host?: string;
  /** @default 0 (any free port) */
  port?: number;
  /** Largest message accepted or sent. @default MAX_MESSAGE_BYTES */
  maxMessageBytes?: number;
  /** How long a drain lets in-flight Score calls finish before handing them back. @default 20000 */
  drainGraceMs?: number;
  /**
   * After a drain, wait up to this long for a Health call to have reported DRAINING before exiting,
   * so the coordinator stops leasing here before the port closes. @default 0
   */
  announceDrainMs?: number;
  /** Called once a drain has finished (SIGTERM or the Drain rpc); the process entry exits there. */
  onDrained?: (handedBack: number) => void;
  /** Structured log sink. @default none */
  log?: (event: string, fields?: Record<string, unknown>) => void;
}

export interface WorkerServer {
  /** host:port the server is bound to. */
  readonly address: string;
  readonly port: number;
  /** Unique per process start; reported at Hello. */
  readonly workerId: string;
  inFlight(): number;
  draining(): boolean;
  /**
   * Sets the host:port coordinators reach this worker at (the address it registers): a Hello naming
   * another address is refused, so that a peer relaying Hello from elsewhere gets no proof for its own
   * address. Until called, Hello names any address.
   */
  advertise(address: string): void;
  /** Epoch ms of the last Health call (0: none yet); the re-registration watchdog reads it. */
  lastHealthAt(): number;
  /** Stops taking Score calls, lets in-flight ones finish for the grace period, hands back the rest. */
  drain(reason: string): Promise<number>;
  /** Shuts the server down (gracefully for a moment, then by force). */
  close(): Promise<void>;
}

interface ActiveCall {
  shardId: string;
  attempt: number;
  done: Promise<void>;
  handBack(): void;
}

type Log = NonNullable<WorkerServerOptions['log']>;

/** gRPC status for an error thrown while serving a call (the caller knows which worker it called). */
function statusOf(e: unknown): { code: grpc.status; details: string } {
  const details = e instanceof Error ? e.message : String(e);
  if (e instanceof ProtocolError) return { code: grpc.status.INVALID_ARGUMENT, details };
  if (e instanceof SecurityError) return { code: grpc.status.PERMISSION_DENIED, details };
  if (e instanceof NextbuyError) return { code: grpc.status.FAILED_PRECONDITION, details };
  return { code: grpc.status.INTERNAL, details };
}

function toFloat32(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) throw new ProtocolError(`weights have ${bytes.byteLength} bytes, not a whole number of float32 values`);
  const copy = new Uint8Array(bytes.byteLength); // aligned copy: gRPC buffers may start at any offset
  copy.set(bytes);
  return new Float32Array(copy.buffer);
}

const asBuffer = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

export async function startWorkerServer(o: WorkerServerOptions): Promise<WorkerServer> {
  const log: Log = o.log ?? (() => {});
  const maxMessageBytes = o.maxMessageBytes ?? MAX_MESSAGE_BYTES;
  const graceMs = o.drainGraceMs ?? DEFAULT_DRAIN_GRACE_MS;
  const workerId = `${o.name}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const sessions = new SessionTable({ token: o.token });
  const bindingReleaseMs = o.bindingReleaseMs ?? 60_000;
  /** The run a static worker serves now (a run-bound worker's is fixed by o.runId). */
  let binding: { runId: string; account: string; lastCallAt: number } | null = null;
  let advertisedAddress: string | null = null;
  const ownCert = certificateFingerprint(processTlsMaterial()?.cert);
  const active = new Set<ActiveCall>();
  let isDraining = false;
  let drainPromise: Promise<number> | null = null;
  let lastHealth = 0;
  let drainAnnounced = false;
  // Score payloads are received into receiveBuffers (see workerServiceReceivingInto) and given back once scored;
  // results are written into replyBuffers and given back once sent.
  receiveLargeMessagesPooled();
  const replyBuffers = new PayloadBuffers();

  // Refusals strangers can cause are logged at most once a second (with how many went unlogged): no log flood.
  let lastRefusalLogAt = 0;
  let unloggedRefusals = 0;
  function logRefusal(event: 'call-refused' | 'hello-refused', fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - lastRefusalLogAt < 1_000) {
      unloggedRefusals++;
      return;
    }
    log(event, unloggedRefusals > 0 ? { ...fields, alsoRefused: unloggedRefusals } : fields);
    lastRefusalLogAt = now;
    unloggedRefusals = 0;
  }

  /** Rejects calls from peers of another protocol version (the session was checked before, by the guard). */
  function admit(metadata: grpc.Metadata): { code: grpc.status; details: string } | null {
    const version = Number(metadata.get(PROTOCOL_METADATA_KEY)[0] ?? NaN);
    if (version !== PROTOCOL_VERSION) {
      return {
        code: PROTOCOL_MISMATCH_STATUS,
        details: protocolMismatchMessage(`worker ${o.name}`, Number.isNaN(version) ? 0 : version, PROTOCOL_VERSION, 'caller', 'worker'),
      };
    }
    return null;
  }

  /** The guard's check of every call but the handshake's, on its metadata, before its body is read. */
  function authenticate(method: string, metadata: grpc.Metadata, call: { getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } } | null }): { code: grpc.status; details: string } | null {
    const now = Date.now();
    const session = sessions.verify(metadata, method, peerFingerprint(call), now);
    if (typeof session === 'string' || (binding && session.runId !== binding.runId)) {
      logRefusal('call-refused', { rpc: method.slice(method.lastIndexOf('/') + 1), why: typeof session === 'string' ? session : 'released run' });
      return { code: grpc.status.UNAUTHENTICATED, details: "the caller does not hold this run's token (no valid session): say Hello first" };
    }
    if (binding) binding.lastCallAt = now;
    return null;
  }
  const guard = createServerGuard({ preAuthMethods: [workerMethod('Hello'), workerMethod('HelloConfirm')], authenticate });

  function unary<Req, Res>(what: string, fn: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const refused = admit(call.metadata);
      if (refused) return callback(refused);
      fn(call.request).then(
        (res) => callback(null, res),
        (e: unknown) => {
          log('call-failed', { rpc: what, error: (e as Error).message });
          callback(statusOf(e));
        },
      );
    };
  }

  /** Scoring gets lazily densified batches (engines pay for the columns they read); training data is densified now. */
  function decodeShardPayload(bytes: Uint8Array | undefined, lazy: boolean): SequenceBatch[] {
    if (!bytes || bytes.byteLength === 0) throw new ProtocolError('empty Arrow payload');
    return decodeBatches(bytes).map((b) => (lazy ? lazySequenceBatch(b) : toSequenceBatch(b)));
  }

  const score: grpc.handleBidiStreamingCall<ScoreRequest, ScoreReply> = (call) => {
    const refused = admit(call.metadata);
    if (refused) {
      call.emit('error', refused);
      return;
    }
    if (isDraining) {
      const md = new grpc.Metadata();
      md.set(HANDED_BACK_METADATA_KEY, '1');
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: `worker ${o.name} is draining and takes no new shards`, metadata: md });
      return;
    }
    let finished = false;
    const finish = (status?: { code: grpc.status; details: string; metadata?: grpc.Metadata }) => {
      if (finished) return;
      finished = true;
      if (call.cancelled || call.destroyed) return;
      if (status) call.emit('error', status);
      else call.end();
    };
    const entry: ActiveCall = {
      shardId: '',
      attempt: 0,
      done: Promise.resolve(),
      handBack() {
        const md = new grpc.Metadata();
        md.set(HANDED_BACK_METADATA_KEY, '1');
        log('handed-back', { shard: entry.shardId, attempt: entry.attempt });
        finish({ code: grpc.status.UNAVAILABLE, details: `worker ${o.name} is draining: shard ${entry.shardId} handed back`, metadata: md });
      },
    };
    const reader = new StreamReader<ScoreRequest>(call);
    entry.done = (async () => {
      let header: ScoreHeader | null = null;
      let rowsScored = 0;
      let payloads = 0;
      try {
        for (;;) {
          const req = await reader.next();
          if (req === undefined || finished || call.cancelled) break;
          if (req.header) {
            if (header) throw new ProtocolError('Score stream sent a second header');
            header = req.header;
            entry.shardId = header.shard_id;
            entry.attempt = header.attempt;
            if (header.model_versions.length === 0) throw new ProtocolError(`Score header for shard ${header.shard_id} names no model version`);
            log('score-start', { shard: header.shard_id, attempt: header.attempt });
            continue;
          }
          if (!header) throw new ProtocolError('Score stream must start with a header before Arrow payloads');
          const batches = decodeShardPayload(req.arrow, true);
          const results: ScoredRows[] = [];
          let inputRows = 0;
          for (const batch of batches) {
            results.push({ customerIds: customerIdBytesOf(batch), scored: await o.engine.score(batch, header.model_versions, header.products) });
            inputRows += batch.size;
          }
          if (finished || call.cancelled) break;
          const rows = results.reduce((n, r) => n + r.scored.scores.length, 0);
          const arrow = encodeResults(results, { headroom: REPLY_HEADROOM, buffers: replyBuffers });
          allowInPlaceFraming(arrow);
          receiveBuffers.give(req.arrow!); // nothing refers to the payload's bytes any more: results are encoded
          const reply = { shard_id: header.shard_id, attempt: header.attempt, arrow, rows, input_rows: inputRows };
          await writeMessage(call, reply, () => replyBuffers.give(arrow)); // HTTP/2 sends from the buffer until then
          rowsScored += inputRows;
          payloads++;
        }
        if (!finished && !call.cancelled) log('score-done', { shard: header?.shard_id, attempt: header?.attempt, rows: rowsScored, payloads });
        finish();
      } catch (e) {
        if (!finished && !call.cancelled) log('score-failed', { shard: header?.shard_id, attempt: header?.attempt, error: (e as Error).message });
        finish(statusOf(e));
      } finally {
        active.delete(entry);
      }
    })();
    active.add(entry);
  };

  const loadTrainingData: grpc.handleClientStreamingCall<TrainingDataRequest, TrainingDataReply> = (call, callback) => {
    const refused = admit(call.metadata);
    if (refused) return callback(refused);
    const reader = new StreamReader<TrainingDataRequest>(call);
    (async () => {
      let header: TrainingDataHeader | null = null;
      const batches: SequenceBatch[] = [];
      for (;;) {
        const req = await reader.next();
        if (req === undefined) break;
        if (req.header) {
          if (header) throw new ProtocolError('LoadTrainingData stream sent a second header');
          header = req.header;
          continue;
        }
        if (!header) throw new ProtocolError('LoadTrainingData stream must start with a header before Arrow payloads');
        batches.push(...decodeShardPayload(req.arrow, false));
      }
      if (!header) throw new ProtocolError('LoadTrainingData stream ended without a header');
      const rows = await o.engine.addTrainingData(header.dataset_id, header.shard_id, batches);
      log('training-data', { dataset: header.dataset_id, shard: header.shard_id, rows });
      return { shard_id: header.shard_id, rows } satisfies TrainingDataReply;
    })().then(
      (reply) => callback(null, reply),
      (e: unknown) => callback(statusOf(e)),
    );
  };

  const handlers: WorkerHandlers = {
    Hello: (call, callback) => {
      const req = call.request;
      if (req.protocol_version !== PROTOCOL_VERSION) {
        return callback({
          code: PROTOCOL_MISMATCH_STATUS,
          details: protocolMismatchMessage(`worker ${o.name} at Hello`, req.protocol_version, PROTOCOL_VERSION, 'coordinator', 'worker'),
        });
      }
      // Strangers call this: refusals name nothing of this worker's run.
      if (o.runId !== null && req.run_id !== o.runId) {
        logRefusal('hello-refused', { why: 'another run' });
        return callback({ code: grpc.status.PERMISSION_DENIED, details: 'this worker was started for another run' });
      }
      if (advertisedAddress !== null && req.address !== advertisedAddress) {
        logRefusal('hello-refused', { why: 'another address', address: req.address });
        return callback({ code: grpc.status.PERMISSION_DENIED, details: `this worker is not reachable at ${req.address}` });
      }
      if (!req.nonce || req.nonce.byteLength !== NONCE_BYTES) {
        return callback({ code: grpc.status.INVALID_ARGUMENT, details: `Hello needs a nonce of ${NONCE_BYTES} bytes` });
      }
      const { workerNonce, sessionId, proof } = sessions.begin({
        runId: req.run_id,
        account: req.account,
        address: req.address,
        coordinatorNonce: req.nonce,
        coordinatorCert: peerFingerprint(call),
        workerCert: ownCert,
      });
      callback(null, { protocol_version: PROTOCOL_VERSION, nonce: workerNonce, session_id: sessionId, proof });
    },
    HelloConfirm: (call, callback) => {
      const refused = admit(call.metadata);
      if (refused) return callback(refused);
      const transcript = sessions.pendingHello(call.request.session_id, peerFingerprint(call));
      const session = transcript && sessions.confirm(transcript, call.request.proof);
      if (!session) {
        logRefusal('hello-refused', { why: transcript ? 'bad proof' : 'no such handshake' });
        return callback({ code: grpc.status.UNAUTHENTICATED, details: "the caller does not hold this run's token (or the handshake expired)" });
      }
      const now = Date.now();
      if (o.runId === null) {
        // A static worker: the coordinator has proven the token; it may take the worker only if no other run holds it.
        if (binding && (binding.runId !== session.runId || binding.account !== session.account) && now - binding.lastCallAt < bindingReleaseMs) {
          sessions.keepOnly(binding.runId, binding.account);
          log('hello-refused', { why: 'serving another run' });
          return callback({
            code: grpc.status.PERMISSION_DENIED,
            details: `this worker serves another run; it is free again once that run drains it or after ${Math.round(bindingReleaseMs / 1000)} s without its calls`,
          });
        }
        if (!binding || binding.runId !== session.runId || binding.account !== session.account) {
          sessions.keepOnly(session.runId, session.account);
          log('bound', { run: session.runId, account: session.account });
        }
        binding = { runId: session.runId, account: session.account, lastCallAt: now };
      }
      callback(null, { worker_id: workerId, runtimes: o.engine.runtimes(), cores: os.availableParallelism(), max_message_bytes: maxMessageBytes });
    },
    Health: (call, callback) => {
      const refused = admit(call.metadata);
      if (refused) return callback(refused);
      lastHealth = Date.now();
      if (isDraining) drainAnnounced = true;
      callback(null, { state: isDraining ? 'DRAINING' : 'SERVING', in_flight: active.size, rss_bytes: process.memoryUsage.rss() });
    },
    LoadModel: unary('LoadModel', async (req) => {
      const files = new Map(Object.entries(req.files).map(([k, v]) => [k, new Uint8Array(v.buffer, v.byteOffset, v.byteLength)]));
      const r = await o.engine.loadModel(req.model_version, files);
      log('model-loaded', { version: req.model_version, runtime: r.runtime });
      return { model_version: req.model_version, runtime: r.runtime, note: r.note };
    }),
    Score: score,
    LoadTrainingData: loadTrainingData,
    TrainRound: unary('TrainRound', async (req) => {
      const r = await o.engine.trainRound({
        datasetId: req.dataset_id,
        specJson: req.spec_json,
        weights: toFloat32(req.weights),
        round: req.round,
        localSteps: req.local_steps,
        seed: req.seed,
        shardIds: req.shard_ids,
      });
      return { weights: asBuffer(r.weights), examples: r.examples, loss: r.loss };
    }),
    Validate: unary('Validate', async (req) => {
      const r = await o.engine.validate({ datasetId: req.dataset_id, specJson: req.spec_json, weights: toFloat32(req.weights), shardIds: req.shard_ids });
      return { scores: asBuffer(r.scores), labels: asBuffer(r.labels), customer_ids: r.customerIds };
    }),
    Drain: unary('Drain', async (req) => {
      drainAnnounced = true; // the coordinator asked: it knows
      return { handed_back: await drain(req.reason || 'Drain rpc') };
    }),
  };

  function drain(reason: string): Promise<number> {
    if (drainPromise) return drainPromise;
    isDraining = true;
    log('draining', { reason, inFlight: active.size, graceMs });
    drainPromise = (async () => {
      const deadline = Date.now() + graceMs;
      while (active.size > 0 && Date.now() < deadline) {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((r) => (timer = setTimeout(r, deadline - Date.now())));
        await Promise.race([Promise.all([...active].map((a) => a.done)), timeout]);
        clearTimeout(timer);
      }
      const handedBack = active.size;
      for (const a of [...active]) a.handBack();
      // Only worth waiting for if a coordinator is watching (Health calls came recently).
      const announceMs = o.announceDrainMs ?? 0;
      const announceBy = Date.now() + announceMs;
      const watched = () => Date.now() - lastHealth <= 2 * announceMs;
      while (!drainAnnounced && watched() && Date.now() < announceBy) await new Promise((r) => setTimeout(r, 20));
      log('drained', { handedBack, announced: drainAnnounced });
      // Let the Drain reply (if any) leave before the process entry shuts the server down.
      setImmediate(() => o.onDrained?.(handedBack));
      return handedBack;
    })();
    return drainPromise;
  }

  const server = createServer(maxMessageBytes, guard.serverOptions);
  server.addService(workerServiceReceivingInto(receiveBuffers), handlers);
  const host = o.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${o.port ?? 0}`, serverCredentials(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  raiseSessionWindows(server);
  guard.watchConnections(server);
  log('listening', { host, port, workerId });

  return {
    address: `${host}:${port}`,
    port,
    workerId,
    inFlight: () => active.size,
    draining: () => isDraining,
    lastHealthAt: () => lastHealth,
    advertise: (address) => void (advertisedAddress = address),
    drain,
    close: () => shutdownServer(server),
  };
}
