/**
 * Sending an Arrow payload without copying it: the request message (`{ alignment, arrow: payload }`)
 * and grpc-js's 5-byte message prefix are written into PAYLOAD_HEADROOM bytes the payload's buffer
 * keeps free before it, and the buffer itself is handed to HTTP/2.
 *
 * grpc-js would otherwise copy each message twice: protobuf serialisation, then its framing (a new
 * buffer of prefix + message). A new multi-megabyte buffer per message, held until HTTP/2 has written
 * it, made the coordinator run a full collection every few payloads (bench/transport.ts: about 50 per
 * 1.1 GB, and 2.9 CPU ms per MB sent; 15 and 1.6 without the copy).
 *
 * grpc-js has no option for either, so this module reaches into it in one place, feature-checked:
 * where its internals differ, messages are framed by copy as before (`inPlaceFramingInstalled` says
 * which, and a test fails on it).
 *
 * The sender must not reuse a payload's buffer before the write's callback: HTTP/2 reads from it until
 * the bytes are written to the socket.
 */
import { createRequire } from 'node:module';
import type { ScoreRequest, TrainingDataRequest } from './index.js';

/** grpc-js's message prefix: compressed flag (1 byte), message length (4 bytes, big-endian). */
const GRPC_PREFIX_BYTES = 5;
/** The request's field headers before the Arrow bytes: filler tag and length, filler, arrow tag, length varint (see below). */
const FIELD_HEADER_BYTES = 11;
/** Bytes a payload buffer keeps free before an Arrow payload so that it is framed where it lies. */
export const PAYLOAD_HEADROOM = GRPC_PREFIX_BYTES + FIELD_HEADER_BYTES;

const ALIGNMENT_FIELD_TAG = (15 << 3) | 2; // field 15 `alignment`, length-delimited
const ARROW_FIELD_TAG = (2 << 3) | 2; // field 2 `arrow` (ScoreRequest and TrainingDataRequest), length-delimited

/** Payloads whose PAYLOAD_HEADROOM bytes before them are theirs to overwrite. */
const framable = new WeakSet<Uint8Array>();
/** Serialised requests with GRPC_PREFIX_BYTES of their own before them. */
const prefixable = new WeakSet<Uint8Array>();

/** Declares that the PAYLOAD_HEADROOM bytes before `view` in its buffer belong to it and may be overwritten. */
export function allowInPlaceFraming(view: Uint8Array): void {
  if (view.byteOffset >= PAYLOAD_HEADROOM) framable.add(view);
}

/**
 * A request serialiser for `{ arrow }` requests that writes the fields' headers into the payload's
 * headroom: an `alignment` filler sized so the Arrow bytes start 8-byte aligned in the receiver's
 * buffer (grpc-js's receiver keeps its 5-byte prefix in front of the message; a misaligned payload
 * makes Arrow copy every record batch body), then `arrow`'s tag and length. Other requests: `fallback`.
 *
 * The filler makes prefix + headers a multiple of 8 for any length varint of 1 to 4 bytes (messages up
 * to 256 MiB): the headers always take FIELD_HEADER_BYTES.
 */
export function inPlaceRequestSerializer(fallback: (value: object) => Buffer): (value: ScoreRequest | TrainingDataRequest) => Buffer {
  return (value) => {
    const arrow = value.arrow;
    if (!arrow || value.header || !framable.has(arrow) || arrow.byteLength >= 2 ** 28) return fallback(value);
    let varint = 1;
    for (let n = arrow.byteLength; n >= 0x80; n >>>= 7) varint++;
    const filler = FIELD_HEADER_BYTES - 2 - 1 - varint;
    const start = arrow.byteOffset - FIELD_HEADER_BYTES;
    const head = new Uint8Array(arrow.buffer, start, FIELD_HEADER_BYTES);
    head[0] = ALIGNMENT_FIELD_TAG;
    head[1] = filler;
    head.fill(0, 2, 2 + filler);
    head[2 + filler] = ARROW_FIELD_TAG;
    let n = arrow.byteLength;
    for (let i = 3 + filler; i < FIELD_HEADER_BYTES; i++, n >>>= 7) head[i] = i < FIELD_HEADER_BYTES - 1 ? (n & 0x7f) | 0x80 : n;
    const serialized = Buffer.from(arrow.buffer, start, FIELD_HEADER_BYTES + arrow.byteLength);
    prefixable.add(serialized);
    return serialized;
  };
}

interface MessageFramer {
  writeMessage(message: Buffer, compress: boolean): Promise<Buffer>;
}

/**
 * Replaces grpc-js's framing of uncompressed messages (its IdentityHandler, the only one nextbuy uses)
 * with one that writes the prefix in place for `prefixable` messages. True if installed.
 */
function installInPlaceFraming(): boolean {
  try {
    const require = createRequire(import.meta.url);
    const { CompressionFilter } = require('@grpc/grpc-js/build/src/compression-filter.js') as {
      CompressionFilter: new (options: object, shared: object) => { sendCompression: MessageFramer };
    };
    const framer = Object.getPrototypeOf(new CompressionFilter({}, {}).sendCompression) as MessageFramer & { constructor: { name: string } };
    if (framer.constructor.name !== 'IdentityHandler' || typeof framer.writeMessage !== 'function') return false;
    const frameByCopy = framer.writeMessage;
    framer.writeMessage = async function (this: MessageFramer, message: Buffer, compress: boolean): Promise<Buffer> {
      if (!prefixable.has(message)) return frameByCopy.call(this, message, compress);
      const framed = Buffer.from(message.buffer, message.byteOffset - GRPC_PREFIX_BYTES, GRPC_PREFIX_BYTES + message.length);
      framed[0] = 0; // not compressed
      framed.writeUInt32BE(message.length, 1);
      return framed;
    };
    return true;
  } catch {
    return false;
  }
}

/** Whether grpc-js frames prefixable messages in place in this process (else it copies them, correctly but slower). */
export const inPlaceFramingInstalled: boolean = installInPlaceFraming();
