/**
 * Sending Arrow bytes without copying them, both ways: a message's other fields and grpc-js's 5-byte
 * message prefix are written into free bytes the Arrow bytes' buffer keeps before them (headroom), and
 * the buffer itself is handed to HTTP/2.
 *   - Requests (ScoreRequest, TrainingDataRequest `{ arrow }`): the coordinator's shard payloads keep
 *     PAYLOAD_HEADROOM bytes (coordinator/cluster/shard-payloads.ts).
 *   - Replies (ScoreReply): a worker's result streams keep REPLY_HEADROOM bytes (worker/server.ts).
 *
 * grpc-js would otherwise copy each message twice: protobuf serialisation, then its framing (a new
 * buffer of prefix + message). A new multi-megabyte buffer per message, held until HTTP/2 has written
 * it, made the coordinator run a full collection every few payloads (bench/transport.ts: about 50 per
 * 1.1 GB, and 2.9 CPU ms per MB sent; 15 and 1.6 without the copy).
 *
 * grpc-js has no option for either, so this module reaches into it in two places (client and server
 * framing), each checked at install: where its internals differ, messages are framed by copy as before
 * (`inPlaceFraming` says which, and a test fails on it).
 *
 * The sender must not reuse a buffer before the write's callback: HTTP/2 reads from it until the bytes
 * are written to the socket.
 */
import { createRequire } from 'node:module';
import type { ScoreReply, ScoreRequest, TrainingDataRequest } from './index.js';

/** grpc-js's message prefix: compressed flag (1 byte), message length (4 bytes, big-endian). */
const GRPC_PREFIX_BYTES = 5;
/** A request's field headers before the Arrow bytes: alignment tag and length, filler, arrow tag, length varint (see below). */
const REQUEST_FIELD_HEADER_BYTES = 11;
/** Bytes a shard payload's buffer keeps free before it so that its request is framed where it lies. */
export const PAYLOAD_HEADROOM = GRPC_PREFIX_BYTES + REQUEST_FIELD_HEADER_BYTES;
/** Bytes a result stream's buffer keeps free before it: room for a reply's other fields (a shard id of up to about 90 bytes). */
export const REPLY_HEADROOM = 128;

const ALIGNMENT_FIELD_TAG = (15 << 3) | 2; // field 15 `alignment` (all three messages), length-delimited
const REQUEST_ARROW_FIELD_TAG = (2 << 3) | 2; // field 2 `arrow` of ScoreRequest and TrainingDataRequest
const REPLY_ARROW_FIELD_TAG = (3 << 3) | 2; // field 3 `arrow` of ScoreReply

/** Arrow bytes whose buffer's bytes before them are theirs to overwrite. */
const framable = new WeakSet<Uint8Array>();
/** Serialised messages with GRPC_PREFIX_BYTES of their own before them. */
const prefixable = new WeakSet<Uint8Array>();

/** Declares that the bytes before `view` in its buffer belong to it and may be overwritten when it is sent. */
export function allowInPlaceFraming(view: Uint8Array): void {
  framable.add(view);
}

function varintBytes(n: number): number {
  let bytes = 1;
  for (; n >= 0x80; n >>>= 7) bytes++;
  return bytes;
}

/**
 * Serialises a message as `fields` (the message's other fields, already encoded), an `alignment` filler,
 * then the `arrow` field, writing all but the Arrow bytes into the headroom before them; null where the
 * Arrow bytes are not framable or the headroom is too small. The filler is sized so that prefix and
 * headers are a multiple of 8: the receiver's message buffer starts 8-byte aligned with grpc-js's prefix
 * in front, so the Arrow bytes land aligned too (a misaligned body makes Arrow copy every buffer).
 */
function serializeAroundArrow(fields: Uint8Array, arrowTag: number, arrow: Uint8Array | undefined): Buffer | null {
  if (!arrow || !framable.has(arrow) || arrow.byteLength >= 2 ** 28) return null;
  const varint = varintBytes(arrow.byteLength);
  const filler = (8 - ((fields.byteLength + varint) % 8)) % 8;
  const headerBytes = fields.byteLength + 2 + filler + 1 + varint;
  if (arrow.byteOffset < GRPC_PREFIX_BYTES + headerBytes) return null;
  const start = arrow.byteOffset - headerBytes;
  const head = new Uint8Array(arrow.buffer, start, headerBytes);
  head.set(fields, 0);
  let at = fields.byteLength;
  head[at++] = ALIGNMENT_FIELD_TAG;
  head[at++] = filler;
  head.fill(0, at, at + filler);
  at += filler;
  head[at++] = arrowTag;
  let n = arrow.byteLength;
  for (let i = 0; i < varint; i++, n >>>= 7) head[at++] = i < varint - 1 ? (n & 0x7f) | 0x80 : n;
  const serialized = Buffer.from(arrow.buffer, start, headerBytes + arrow.byteLength);
  prefixable.add(serialized);
  return serialized;
}

const NO_FIELDS = new Uint8Array(0);

/** A request serialiser for `{ arrow }` requests that frames framable payloads in place; other requests: `fallback`. */
export function inPlaceRequestSerializer(fallback: (value: object) => Buffer): (value: ScoreRequest | TrainingDataRequest) => Buffer {
  return (value) => (value.header ? null : serializeAroundArrow(NO_FIELDS, REQUEST_ARROW_FIELD_TAG, value.arrow)) ?? fallback(value);
}

/** A ScoreReply serialiser that frames framable result streams in place (its other fields by `fallback`); others: `fallback`. */
export function inPlaceReplySerializer(fallback: (value: object) => Buffer): (value: ScoreReply) => Buffer {
  return (value) => {
    if (!framable.has(value.arrow)) return fallback(value);
    const { arrow, ...fields } = value;
    return serializeAroundArrow(fallback(fields), REPLY_ARROW_FIELD_TAG, arrow) ?? fallback(value);
  };
}

/** A prefixable message framed where it lies: grpc-js's prefix written into the 5 bytes before it. */
function framedInPlace(message: Buffer): Buffer {
  return withPrefix(Buffer.from(message.buffer, message.byteOffset - GRPC_PREFIX_BYTES, GRPC_PREFIX_BYTES + message.length), message.length);
}

/** What grpc-js does with every other message: prefix and message copied into a new buffer. */
function framedByCopy(message: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(GRPC_PREFIX_BYTES + message.length);
  message.copy(framed, GRPC_PREFIX_BYTES);
  return withPrefix(framed, message.length);
}

function withPrefix(framed: Buffer, messageBytes: number): Buffer {
  framed[0] = 0; // not compressed
  framed.writeUInt32BE(messageBytes, 1);
  return framed;
}

const requireGrpc = createRequire(import.meta.url);

interface MessageFramer {
  writeMessage(message: Buffer, compress: boolean): Promise<Buffer>;
}

/** Client side: replaces the framing of uncompressed messages (IdentityHandler, the only one nextbuy uses). */
function installForRequests(): boolean {
  try {
    const { CompressionFilter } = requireGrpc('@grpc/grpc-js/build/src/compression-filter.js') as {
      CompressionFilter: new (options: object, shared: object) => { sendCompression: MessageFramer };
    };
    const framer = Object.getPrototypeOf(new CompressionFilter({}, {}).sendCompression) as MessageFramer & { constructor: { name: string } };
    if (framer.constructor.name !== 'IdentityHandler' || typeof framer.writeMessage !== 'function') return false;
    const frameByCopy = framer.writeMessage;
    framer.writeMessage = async function (this: MessageFramer, message: Buffer, compress: boolean): Promise<Buffer> {
      return prefixable.has(message) ? framedInPlace(message) : frameByCopy.call(this, message, compress);
    };
    return true;
  } catch {
    return false;
  }
}

interface ServerCall {
  handler: { serialize(value: unknown): Buffer };
  serializeMessage(value: unknown): Buffer;
}

/** Server side: replaces the serialise-and-frame step of every server call (grpc-js never compresses responses). */
function installForReplies(): boolean {
  try {
    const { BaseServerInterceptingCall } = requireGrpc('@grpc/grpc-js/build/src/server-interceptors.js') as { BaseServerInterceptingCall?: { prototype: ServerCall } };
    const call = BaseServerInterceptingCall?.prototype;
    if (!call || typeof call.serializeMessage !== 'function') return false;
    const serializeAndCopy = call.serializeMessage;
    // It must call handler.serialize and frame the result as framedByCopy does, or replacing it would change more than the copy.
    const probe = serializeAndCopy.call({ handler: { serialize: () => Buffer.from([7, 8]) } } as unknown as ServerCall, {});
    if (!Buffer.isBuffer(probe) || !probe.equals(Buffer.from([0, 0, 0, 0, 2, 7, 8]))) return false;
    call.serializeMessage = function (this: ServerCall, value: unknown): Buffer {
      const message = this.handler.serialize(value);
      return prefixable.has(message) ? framedInPlace(message) : framedByCopy(message);
    };
    return true;
  } catch {
    return false;
  }
}

/** Whether grpc-js frames prefixable messages in place in this process, each way (else it copies them, correctly but slower). */
export const inPlaceFraming: { readonly requests: boolean; readonly replies: boolean } = Object.freeze({
  requests: installForRequests(),
  replies: installForReplies(),
});
