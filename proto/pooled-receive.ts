/**
 * Receiving large gRPC messages into pooled buffers.
 *
 * grpc-js assembles each message it receives from its HTTP/2 chunks into a new buffer. For a worker's
 * multi-megabyte Score payloads that is a fresh allocation per payload, paid for by page faults on the
 * copy into it and by the collector afterwards, and the payload was then copied once more into a pooled
 * buffer (bench/transport.ts: the assembly copy took as long as all Arrow decoding and scoring together).
 * This decoder assembles messages of POOLED_MESSAGE_MIN_BYTES and more straight into a buffer of
 * `receiveBuffers`, where the Score handler keeps it and gives it back once scored.
 *
 * It decodes gRPC's Length-Prefixed-Message framing (1 byte compressed flag, 4 bytes big-endian length,
 * the message), and yields each message with its prefix, as grpc-js's own decoder does. grpc-js has no
 * option for this, so `receiveLargeMessagesPooled` replaces its decoder class for every call of this
 * process, in one place and feature-checked: where grpc-js differs, messages are received as before.
 */
import { createRequire } from 'node:module';
import { PayloadBuffers } from './payload-buffers.js';

/** Messages this large or larger are assembled in `receiveBuffers`; smaller ones in a buffer of their own. */
export const POOLED_MESSAGE_MIN_BYTES = 1024 * 1024;
const PREFIX_BYTES = 5;

/** The pool messages are received into. A buffer goes back to it only when its receiver gives it back. */
export const receiveBuffers = new PayloadBuffers();

/** grpc-js's StreamDecoder interface: bytes in, complete prefixed messages out. */
export class PooledMessageDecoder {
  private readonly prefix = Buffer.alloc(PREFIX_BYTES);
  private prefixFill = 0;
  private message: Buffer | null = null;
  private messageFill = 0;

  constructor(
    /** -1: no limit. */
    private readonly maxMessageBytes: number,
    private readonly pool: PayloadBuffers = receiveBuffers,
  ) {}

  write(data: Buffer): Buffer[] {
    const messages: Buffer[] = [];
    let at = 0;
    while (at < data.length) {
      if (!this.message) {
        const n = Math.min(PREFIX_BYTES - this.prefixFill, data.length - at);
        data.copy(this.prefix, this.prefixFill, at, at + n);
        this.prefixFill += n;
        at += n;
        if (this.prefixFill < PREFIX_BYTES) break;
        this.prefixFill = 0;
        const length = this.prefix.readUInt32BE(1);
        // The same words as grpc-js's decoder: the server answers RESOURCE_EXHAUSTED with them.
        if (this.maxMessageBytes !== -1 && length > this.maxMessageBytes) {
          throw new Error(`Received message larger than max (${length} vs ${this.maxMessageBytes})`);
        }
        this.message =
          length >= POOLED_MESSAGE_MIN_BYTES ? this.pool.take(PREFIX_BYTES + length).subarray(0, PREFIX_BYTES + length) : Buffer.allocUnsafe(PREFIX_BYTES + length);
        this.prefix.copy(this.message, 0);
        this.messageFill = PREFIX_BYTES;
      }
      const n = Math.min(this.message.length - this.messageFill, data.length - at);
      data.copy(this.message, this.messageFill, at, at + n);
      this.messageFill += n;
      at += n;
      if (this.messageFill === this.message.length) {
        messages.push(this.message);
        this.message = null;
      }
    }
    return messages;
  }
}

let installed: boolean | null = null;

/**
 * Makes grpc-js receive every message of this process through PooledMessageDecoder. Idempotent; true
 * if installed (else grpc-js's own decoder stays, and receivers copy payloads into the pool instead).
 */
export function receiveLargeMessagesPooled(): boolean {
  if (installed !== null) return installed;
  installed = false;
  try {
    const require = createRequire(import.meta.url);
    const decoderModule = require('@grpc/grpc-js/build/src/stream-decoder.js') as { StreamDecoder?: unknown };
    const original = decoderModule.StreamDecoder as (new (max: number) => { write(data: Buffer): Buffer[] }) | undefined;
    if (typeof original !== 'function' || typeof original.prototype.write !== 'function') return false;
    decoderModule.StreamDecoder = class extends PooledMessageDecoder {
      constructor(maxMessageBytes: number) {
        super(maxMessageBytes);
      }
    };
    installed = decoderModule.StreamDecoder !== original;
  } catch {
    installed = false;
  }
  return installed;
}
