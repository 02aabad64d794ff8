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
