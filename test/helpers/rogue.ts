/**
 * Hostile peers over real gRPC on 127.0.0.1, for the attacks of issue 22: a rogue worker that relays
 * the session handshake to a real worker (so that the coordinator would take it for that worker) and
 * records every call it is sent, and the tricks it tries on its own (a worker's Hello answer as a
 * registration proof, captured call metadata replayed elsewhere).
 */
import { randomBytes } from 'node:crypto';
import { channelCredentials } from '../../proto/credentials.js';
import {
  PROTOCOL_METADATA_KEY,
  PROTOCOL_VERSION,
  createCoordinatorClient,
  createServer,
  createWorkerClient,
  grpc,
  shutdownServer,
  workerService,
  type HelloReply,
  type RegisterReply,
  type WorkerClient,
} from '../../proto/index.js';

export interface RecordedCall {
  rpc: string;
  metadata: Record<string, string>;
  request?: unknown;
}

export interface RogueWorker {
  address: string;
  /** Every call the rogue was sent, in order (Score and LoadTrainingData: each message). */
  received: RecordedCall[];
  close(): Promise<void>;
}

function plain(md: grpc.Metadata): Record<string, string> {
  return Object.fromEntries(Object.entries(md.getMap()).map(([k, v]) => [k, String(v)]));
}

/** Forwards a unary call to the real worker with the caller's metadata; answers what it answers. */
function relay(target: WorkerClient | null, rpc: 'Hello' | 'HelloConfirm'): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    if (!target) return callback({ code: grpc.status.UNIMPLEMENTED, details: 'no one to relay to' });
    const method = target[rpc] as unknown as (r: unknown, m: grpc.Metadata, o: grpc.CallOptions, cb: grpc.requestCallback<unknown>) => void;
    method.call(target, call.request, call.metadata, { deadline: Date.now() + 5_000 }, (e, v) => (e ? callback({ code: e.code, details: e.details }) : callback(null, v)));
  };
}

/** A rogue worker on 127.0.0.1 that relays Hello/HelloConfirm to `relayTo` (if given) and serves everything else happily. */
export async function startRogueWorker(o: { relayTo?: string } = {}): Promise<RogueWorker> {
  const received: RecordedCall[] = [];
  const target = o.relayTo ? createWorkerClient(o.relayTo, channelCredentials(null)) : null;
  const record = (rpc: string, call: { metadata: grpc.Metadata }, request?: unknown) => received.push({ rpc, metadata: plain(call.metadata), request });
  const ok = (rpc: string, reply: unknown): grpc.handleUnaryCall<unknown, unknown> => (call, callback) => {
    record(rpc, call, call.request);
    callback(null, reply);
  };
  const hello = relay(target, 'Hello');
  const confirm = relay(target, 'HelloConfirm');
  const server = createServer();
  server.addService(workerService, {
    Hello: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      record('Hello', call, call.request);
      hello(call, cb);
    },
    HelloConfirm: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      record('HelloConfirm', call, call.request);
      confirm(call, cb);
    },
    Health: ok('Health', { state: 'SERVING', in_flight: 0, rss_bytes: 0 }),
    LoadModel: ok('LoadModel', { model_version: '', runtime: 'rogue', note: '' }),
    TrainRound: ok('TrainRound', { weights: Buffer.alloc(0), examples: 0, loss: 0 }),
    Validate: ok('Validate', { scores: Buffer.alloc(0), labels: Buffer.alloc(0), customer_ids: [] }),
    Drain: ok('Drain', { handed_back: 0 }),
    Score: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
      call.on('data', (m) => record('Score', call, m));
      call.on('end', () => call.end());
    },
    LoadTrainingData: (call: grpc.ServerReadableStream<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      call.on('data', (m) => record('LoadTrainingData', call, m));
      call.on('end', () => cb(null, { shard_id: '', rows: 0 }));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return {
    address: `127.0.0.1:${port}`,
    received,
    close: async () => {
      target?.close();
      await shutdownServer(server);
    },
  };
}

/**
 * The signing-oracle attack of issue 22 point 1: ask a real worker's Hello to answer for the rogue's
 * run and address, then offer that answer to the coordinator as the rogue's registration proof.
 * Resolves with what each step got: the worker's answer (or refusal) and the coordinator's.
 */
export async function registerWithWorkerAsOracle(o: {
  worker: string;
  coordinator: string;
  runId: string;
  account: string;
  rogueAddress: string;
  /** The address the rogue asks the worker to answer Hello for. @default rogueAddress */
  helloAddress?: string;
}): Promise<{ hello: HelloReply | grpc.ServiceError; register: RegisterReply | grpc.ServiceError }> {
  const worker = createWorkerClient(o.worker, channelCredentials(null));
  const coordinator = createCoordinatorClient(o.coordinator, channelCredentials(null));
  const unary = <T>(f: (cb: grpc.requestCallback<T>) => void) => new Promise<T | grpc.ServiceError>((resolve) => f((e, v) => resolve(e ?? v!)));
  try {
    const { challenge } = (await unary<{ challenge: Buffer }>((cb) => coordinator.RegisterChallenge({ protocol_version: PROTOCOL_VERSION }, new grpc.Metadata(), {}, cb))) as {
      challenge: Buffer;
    };
    const md = new grpc.Metadata();
    md.set(PROTOCOL_METADATA_KEY, String(PROTOCOL_VERSION));
    // Whatever the worker signs, the rogue feeds it the registration's fields (the challenge as the nonce).
    const hello = await unary<HelloReply>((cb) =>
      worker.Hello({ protocol_version: PROTOCOL_VERSION, run_id: o.runId, account: o.account, nonce: challenge.length === 32 ? challenge : Buffer.concat([challenge, randomBytes(32)]).subarray(0, 32), address: o.helloAddress ?? o.rogueAddress }, md, {}, cb),
    );
    const proof = hello instanceof Error ? randomBytes(32) : hello.proof;
    const register = await unary<RegisterReply>((cb) =>
      coordinator.Register({ protocol_version: PROTOCOL_VERSION, address: o.rogueAddress, run_id: o.runId, worker_name: 'rogue', proof, challenge }, new grpc.Metadata(), {}, cb),
    );
    return { hello, register };
  } finally {
    worker.close();
    coordinator.close();
  }
}

export interface FloodOptions {
  /** host:port of the gRPC server. */
  address: string;
  /** gRPC method path, e.g. /nextbuy.v1.Worker/LoadModel. */
  path: string;
  connections: number;
  streamsPerConnection: number;
  /** Size each stream's one message declares; all but its last byte are sent (as far as the server lets them). */
  messageBytes: number;
  /** A stream whose writes do not drain for this long counts as stalled (the server stopped reading). @default 1500 */
  stallMs?: number;
}

export interface Flood {
  /** Streams the server ended (refused) and streams still open, stalled or with all but the last byte sent. */
  ended: number;
  open: number;
  /** Bytes of message bodies the server accepted (written and drained). */
  bytesSent: number;
  /** The grpc-status of each stream the server answered, as they came. */
  statuses: number[];
  /** Resolves once the server has closed every stream (or its connection). */
  allClosed: Promise<void>;
  close(): void;
}

/**
 * The pre-authentication memory attack of issue 22 point 4: many HTTP/2 streams, each declaring a large
 * gRPC message without credentials and sending all of it but the last byte. Raw node:http2 (no
 * grpc-js), from one reused buffer, so the attacker itself holds little.
 */
export async function floodWithheldStreams(o: FloodOptions): Promise<Flood> {
  const { connect, constants } = await import('node:http2');
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  const stallMs = o.stallMs ?? 1_500;
  const sessions = Array.from({ length: o.connections }, () => {
    const s = connect(`http://${o.address}`);
    s.on('error', () => {});
    return s;
  });
  let bytesSent = 0;
  let ended = 0;
  let closed = 0;
  const statuses: number[] = [];
  let markAllClosed = () => {};
  const allClosed = new Promise<void>((r) => (markAllClosed = r));
  const total = o.connections * o.streamsPerConnection;
  const one = (session: ReturnType<typeof connect>) =>
    new Promise<void>((resolve) => {
      const stream = session.request({
        [constants.HTTP2_HEADER_METHOD]: 'POST',
        [constants.HTTP2_HEADER_PATH]: o.path,
        [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
        [constants.HTTP2_HEADER_TE]: 'trailers',
        'nextbuy-protocol': String(PROTOCOL_VERSION),
      });
      let done = false;
      const finish = (wasEnded: boolean) => {
        if (done) return;
        done = true;
        if (wasEnded) ended++;
        resolve();
      };
      stream.on('error', () => finish(true));
      stream.on('close', () => {
        finish(true);
        if (++closed === total) markAllClosed();
      });
      stream.on('response', (headers) => {
        if (headers['grpc-status'] === undefined) return;
        statuses.push(Number(headers['grpc-status'])); // a trailers-only answer: refused
        finish(true);
      });
      stream.on('trailers', (trailers) => {
        statuses.push(Number(trailers['grpc-status']));
        finish(true);
      });
      stream.resume();
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(o.messageBytes, 1);
      stream.write(prefix);
      (async () => {
        let left = o.messageBytes - 1;
        while (left > 0 && !done) {
          const n = Math.min(left, chunk.length);
          const flushed = stream.write(n === chunk.length ? chunk : chunk.subarray(0, n));
          if (!flushed) {
            const drained = await new Promise<boolean>((r) => {
              const timer = setTimeout(() => r(false), stallMs);
              stream.once('drain', () => {
                clearTimeout(timer);
                r(true);
              });
            });
            if (!drained) return finish(false); // the server stopped reading: stalled
          }
          left -= n;
          bytesSent += n;
        }
        finish(false);
      })().catch(() => finish(true));
    });
  await Promise.all(sessions.flatMap((s) => Array.from({ length: o.streamsPerConnection }, () => one(s))));
  return {
    ended,
    open: total - ended,
    bytesSent,
    statuses,
    allClosed,
    close: () => sessions.forEach((s) => s.destroy()),
  };
}
