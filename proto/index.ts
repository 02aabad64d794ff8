/**
 * The wire contract as TypeScript: loads proto/nextbuy.proto, types its messages, and fixes what both
 * ends must agree on (protocol version, message size limit, channel options, call metadata).
 * Field names keep the proto's snake_case so a reader can match them against nextbuy.proto.
 */
import type { Http2Session } from 'node:http2';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ProtocolError } from '../core/errors.js';
import { inPlaceReplySerializer, inPlaceRequestSerializer } from './in-place-framing.js';
import type { PayloadBuffers } from './payload-buffers.js';

export { PAYLOAD_HEADROOM, REPLY_HEADROOM, allowInPlaceFraming, inPlaceFraming } from './in-place-framing.js';

/** Bump on any change a peer of the previous version would misread. Checked at Register, Hello and every call. */
export const PROTOCOL_VERSION = 2;

/** Largest gRPC message either end sends or accepts. A shard payload is one Arrow record batch (or a few small ones). */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** Call metadata every coordinator → worker call carries (with the session's, see handshake.ts). */
export const PROTOCOL_METADATA_KEY = 'nextbuy-protocol';
/** Trailer a draining worker sets on a Score call it hands back unfinished (not the shard's fault). */
export const HANDED_BACK_METADATA_KEY = 'nextbuy-handed-back';

/** Environment a worker process reads; backends (local processes, Kubernetes pods) set these. */
export const WORKER_ENV = {
  /** host:port of the coordinator's registration server; unset: do not register (static addresses). */
  coordinator: 'NEXTBUY_COORDINATOR',
  runId: 'NEXTBUY_RUN_ID',
  account: 'NEXTBUY_ACCOUNT',
  /** The date the run scores (YYYY-MM-DD), for the worker's log lines. @default none */
  date: 'NEXTBUY_DATE',
  /** The per-run secret. Never passed on the command line (it would show in `ps`). */
  token: 'NEXTBUY_TOKEN',
  /** Name shown in logs and errors, e.g. `local-2` or the pod name. */
  name: 'NEXTBUY_WORKER_NAME',
  /**
   * Host the coordinator should dial (a pod IP); @default the listen host. The worker answers Hello only
   * for this host and its port: a static worker should set it to its host in cluster.addresses.
   */
  advertiseHost: 'NEXTBUY_ADVERTISE_HOST',
  /** Largest message the worker accepts. @default MAX_MESSAGE_BYTES */
  maxMessageBytes: 'NEXTBUY_MAX_MESSAGE_BYTES',
  /** How long a draining worker lets in-flight shards finish before handing them back. @default 20000 */
  drainGraceMs: 'NEXTBUY_DRAIN_GRACE_MS',
  /** Exit when stdin closes (the local backend's parent died). */
  exitWithParent: 'NEXTBUY_EXIT_WITH_PARENT',
  /** Mutual TLS: PEM paths of the deployment CA, this worker's certificate and key (all three or none). */
  tlsCa: 'NEXTBUY_TLS_CA',
  tlsCert: 'NEXTBUY_TLS_CERT',
  tlsKey: 'NEXTBUY_TLS_KEY',
  /** How long a worker keeps trying to register before it exits. @default 300000 */
  registerTimeoutMs: 'NEXTBUY_REGISTER_TIMEOUT_MS',
  /** ONNX Runtime's execution provider for scoring: auto, cpu or cuda (GPU pods). @default 'auto' */
  onnxDevice: 'NEXTBUY_ONNX_DEVICE',
} as const;

/**
 * HTTP/2 receive window (per stream and per connection) on both ends. The 64 KiB default makes a
 * sender wait for a WINDOW_UPDATE every 64 KiB, which a receiver busy scoring sends late: large
 * Arrow payloads then crawl. The application's own window (payloads in flight per shard stream)
 * still bounds what is buffered.
 */
export const RECEIVE_WINDOW_BYTES = 8 * 1024 * 1024;

/** Channel (client) and server options used on both ends. */
export function channelOptions(maxMessageBytes = MAX_MESSAGE_BYTES): grpc.ChannelOptions {
  return {
    'grpc-node.flow_control_window': RECEIVE_WINDOW_BYTES,
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
    // One connection per worker handle: a worker re-admitted at the same address must not share the old one.
    'grpc.use_local_subchannel_pool': 1,
    // Retries are the scheduler's (a shard is re-leased, maybe to another worker): grpc-js need not keep
    // copies of sent messages to replay them. With no retry buffer, a write's callback also means what
    // the sender of a payload framed in place needs: HTTP/2 has written it (with one, grpc-js calls back
    // at once for messages under the buffer's size, and sends them later from the caller's memory).
    'grpc.enable_retries': 0,
    'grpc.retry_buffer_size': 0,
    'grpc.per_rpc_retry_buffer_size': 0,
    // Connect attempts back off to 1 s at most: heartbeats decide liveness, not the channel.
    'grpc.max_reconnect_backoff_ms': 1_000,
    'grpc.initial_reconnect_backoff_ms': 100,
    // Under TLS: the name sent as SNI. Peers are verified against the run's CA, not by host name (see
    // credentials.ts), and an IP address as SNI is deprecated in Node.
    'grpc.ssl_target_name_override': 'nextbuy',
  };
}

/**
 * A gRPC server with the shared options and RECEIVE_WINDOW_BYTES windows. grpc-js has no option for
 * a server's HTTP/2 windows, so this sets them on its http2 settings and on each session, through
 * grpc-js internals (in-place-framing.ts and pooled-receive.ts reach into others), feature-checked:
 * without them the server still works, with 64 KiB windows. `guard`: a ServerGuard's serverOptions (server-guard.ts).
 */
export function createServer(maxMessageBytes = MAX_MESSAGE_BYTES, guard: grpc.ServerOptions = {}): grpc.Server {
  const server = new grpc.Server({ ...channelOptions(maxMessageBytes), ...guard });
  const internals = server as unknown as { commonServerOptions?: { settings?: Record<string, unknown> } };
  if (internals.commonServerOptions && typeof internals.commonServerOptions === 'object') {
    internals.commonServerOptions.settings = { ...internals.commonServerOptions.settings, initialWindowSize: RECEIVE_WINDOW_BYTES };
  }
  return server;
}

/** After bindAsync: raises the connection-level window of every session the server accepts. */
export function raiseSessionWindows(server: grpc.Server): void {
  const internals = server as unknown as { http2Servers?: Map<{ on(event: 'session', f: (s: Http2Session) => void): void }, unknown> };
  if (!(internals.http2Servers instanceof Map)) return;
  for (const http2Server of internals.http2Servers.keys()) {
    http2Server.on('session', (session) => {
      try {
        session.setLocalWindowSize(RECEIVE_WINDOW_BYTES);
      } catch {
        // an old or closing session keeps the default window
      }
    });
  }
}

// ---- messages (snake_case, as on the wire) ----------------------------------------------------

export interface HelloRequest {
  protocol_version: number;
  run_id: string;
  account: string;
  nonce: Buffer;
  address: string;
}
export interface HelloReply {
  protocol_version: number;
  nonce: Buffer;
  session_id: Buffer;
  proof: Buffer;
}
export interface HelloConfirmRequest {
  session_id: Uint8Array;
  proof: Uint8Array;
}
export interface HelloConfirmReply {
  worker_id: string;
  runtimes: string[];
  cores: number;
  max_message_bytes: number;
}
export type HealthRequest = Record<string, never>;
export interface HealthReply {
  state: 'SERVING' | 'DRAINING';
  in_flight: number;
  rss_bytes: number;
}
export interface LoadModelRequest {
  model_version: string;
  files: Record<string, Buffer>;
}
export interface LoadModelReply {
  model_version: string;
  runtime: string;
  note: string;
}
export interface ScoreHeader {
  shard_id: string;
  attempt: number;
  model_versions: string[];
  products: string[];
}
export interface ScoreRequest {
  header?: ScoreHeader | null;
  arrow?: Uint8Array;
  body?: 'header' | 'arrow';
  alignment?: Uint8Array;
}
export interface ScoreReply {
  shard_id: string;
  attempt: number;
  arrow: Buffer;
  rows: number;
  input_rows: number;
  alignment?: Uint8Array;
}
export interface TrainingDataHeader {
  dataset_id: string;
  shard_id: string;
  attempt: number;
}
export interface TrainingDataRequest {
  header?: TrainingDataHeader | null;
  arrow?: Uint8Array;
  body?: 'header' | 'arrow';
  alignment?: Uint8Array;
}
export interface TrainingDataReply {
  shard_id: string;
  rows: number;
}
export interface TrainRoundRequest {
  dataset_id: string;
  spec_json: string;
  weights: Uint8Array;
  round: number;
  local_steps: number;
  seed: number;
  shard_ids: string[];
}
export interface TrainRoundReply {
  weights: Buffer;
  examples: number;
  loss: number;
}
export interface ValidateRequest {
  dataset_id: string;
  spec_json: string;
  weights: Uint8Array;
  shard_ids: string[];
}
export interface ValidateReply {
  scores: Buffer;
  labels: Buffer;
  customer_ids: string[];
}
export interface DrainRequest {
  reason: string;
}
export interface DrainReply {
  handed_back: number;
}
export interface RegisterRequest {
  protocol_version: number;
  address: string;
  run_id: string;
  worker_name: string;
  proof: Uint8Array;
  challenge: Uint8Array;
}
export interface RegisterChallengeRequest {
  protocol_version: number;
}
export interface RegisterChallengeReply {
  challenge: Buffer;
}
export interface RegisterReply {
  accepted: boolean;
  reason: string;
  heartbeat_timeout_ms: number;
}

// ---- services ---------------------------------------------------------------------------------

type Unary<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: grpc.requestCallback<Res>,
) => grpc.ClientUnaryCall;

/** The generated Worker client, typed by hand (no code generation step). */
export interface WorkerClient extends grpc.Client {
  Hello: Unary<HelloRequest, HelloReply>;
  HelloConfirm: Unary<HelloConfirmRequest, HelloConfirmReply>;
  Health: Unary<HealthRequest, HealthReply>;
  LoadModel: Unary<LoadModelRequest, LoadModelReply>;
  Score(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<ScoreRequest, ScoreReply>;
  LoadTrainingData(
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: grpc.requestCallback<TrainingDataReply>,
  ): grpc.ClientWritableStream<TrainingDataRequest>;
  TrainRound: Unary<TrainRoundRequest, TrainRoundReply>;
  Validate: Unary<ValidateRequest, ValidateReply>;
  Drain: Unary<DrainRequest, DrainReply>;
}

export interface CoordinatorClient extends grpc.Client {
  RegisterChallenge: Unary<RegisterChallengeRequest, RegisterChallengeReply>;
  Register: Unary<RegisterRequest, RegisterReply>;
}

/** Server-side handlers of the Worker service. */
export interface WorkerHandlers extends grpc.UntypedServiceImplementation {
  Hello: grpc.handleUnaryCall<HelloRequest, HelloReply>;
  HelloConfirm: grpc.handleUnaryCall<HelloConfirmRequest, HelloConfirmReply>;
  Health: grpc.handleUnaryCall<HealthRequest, HealthReply>;
  LoadModel: grpc.handleUnaryCall<LoadModelRequest, LoadModelReply>;
  Score: grpc.handleBidiStreamingCall<ScoreRequest, ScoreReply>;
  LoadTrainingData: grpc.handleClientStreamingCall<TrainingDataRequest, TrainingDataReply>;
  TrainRound: grpc.handleUnaryCall<TrainRoundRequest, TrainRoundReply>;
  Validate: grpc.handleUnaryCall<ValidateRequest, ValidateReply>;
  Drain: grpc.handleUnaryCall<DrainRequest, DrainReply>;
}

export interface CoordinatorHandlers extends grpc.UntypedServiceImplementation {
  RegisterChallenge: grpc.handleUnaryCall<RegisterChallengeRequest, RegisterChallengeReply>;
  Register: grpc.handleUnaryCall<RegisterRequest, RegisterReply>;
}

/** Full gRPC method path of a Worker rpc, as call metadata MACs name it. */
export function workerMethod(rpc: string): string {
  return `/nextbuy.v1.Worker/${rpc}`;
}

const PROTO_PATH = fileURLToPath(new URL('./nextbuy.proto', import.meta.url));

interface LoadedPackage {
  Worker: grpc.ServiceClientConstructor;
  Coordinator: grpc.ServiceClientConstructor;
}

const loaded = (() => {
  const definition = protoLoader.loadSync(PROTO_PATH, {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const root = grpc.loadPackageDefinition(definition) as unknown as { nextbuy: { v1: LoadedPackage } };
  return root.nextbuy.v1;
})();

/** Score and LoadTrainingData requests, and Score replies, frame their Arrow bytes in place when they can (see in-place-framing.ts). */
function withFramedPayloads(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const framed = (method: grpc.MethodDefinition<object, object>, replies: boolean) => ({
    ...method,
    requestSerialize: inPlaceRequestSerializer(method.requestSerialize as (value: object) => Buffer),
    ...(replies ? { responseSerialize: inPlaceReplySerializer(method.responseSerialize as (value: object) => Buffer) } : {}),
  });
  return {
    ...service,
    Score: framed(service.Score!, true),
    LoadTrainingData: framed(service.LoadTrainingData!, false),
  } as grpc.ServiceDefinition;
}

export const workerService: grpc.ServiceDefinition = withFramedPayloads(loaded.Worker.service);

/**
 * The Worker service for a server that receives each Score payload into a buffer of `buffers`, and
 * gives it back to `buffers` once it is done with the payload: a payload held while it is decoded and
 * scored would otherwise be promoted and wait for a full mark-compact. A payload that grpc-js assembled
 * in `buffers` already (see pooled-receive.ts) is kept where it is; any other is copied there.
 */
export function workerServiceReceivingInto(buffers: PayloadBuffers): grpc.ServiceDefinition {
  const score = workerService.Score!;
  const decode = score.requestDeserialize as (bytes: Buffer) => ScoreRequest;
  return {
    ...workerService,
    Score: {
      ...score,
      requestDeserialize: (bytes: Buffer) => {
        const request = decode(bytes);
        if (request.arrow && request.arrow.byteLength > 0 && !buffers.owns(request.arrow)) request.arrow = buffers.copyOf(request.arrow);
        return request;
      },
    },
  };
}
export const coordinatorService: grpc.ServiceDefinition = loaded.Coordinator.service;
const WorkerClientConstructor = grpc.makeGenericClientConstructor(workerService, 'Worker');

export function createWorkerClient(
  address: string,
  credentials: grpc.ChannelCredentials,
  maxMessageBytes = MAX_MESSAGE_BYTES,
): WorkerClient {
  return new WorkerClientConstructor(address, credentials, channelOptions(maxMessageBytes)) as unknown as WorkerClient;
}

export function createCoordinatorClient(address: string, credentials: grpc.ChannelCredentials): CoordinatorClient {
  return new loaded.Coordinator(address, credentials, channelOptions()) as unknown as CoordinatorClient;
}

// ---- protocol version ------------------------------------------------------------------------

/** The one message for a version mismatch, wherever it is found. */
export function protocolMismatchMessage(where: string, theirs: number, ours: number, theirSide: string, ourSide: string): string {
  return (
    `${where}: protocol version mismatch: the ${theirSide} speaks nextbuy protocol ${theirs}, the ${ourSide} speaks ${ours}; ` +
    `run the same nextbuy version on the coordinator and the workers (same image tag or package version)`
  );
}

export function checkProtocolVersion(where: string, theirs: number, theirSide: string, ourSide: string): void {
  if (theirs !== PROTOCOL_VERSION) {
    throw new ProtocolError(protocolMismatchMessage(where, theirs, PROTOCOL_VERSION, theirSide, ourSide));
  }
}

/** gRPC status a peer should answer a protocol mismatch with. */
export const PROTOCOL_MISMATCH_STATUS = grpc.status.FAILED_PRECONDITION;

export { grpc };

/** How long a server lets in-flight calls finish at shutdown before cutting them. */
const SHUTDOWN_GRACE_MS = 2_000;

/** Stops a gRPC server: graceful first, forced after SHUTDOWN_GRACE_MS. */
export function shutdownServer(server: grpc.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, SHUTDOWN_GRACE_MS);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}
