/**
 * Reads a shard file (Arrow IPC stream, or IPC file) message by message and regroups its record
 * batches into payloads: each payload is a complete IPC stream (schema, the batches, end marker)
 * that fits one gRPC message. Batch bodies are read from the file straight into the payload, never
 * decoded: the worker decodes them. Payloads leave PAYLOAD_HEADROOM bytes before them so the gRPC
 * request is framed in place (see proto/index.ts).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { Message, MessageHeader } from 'apache-arrow';
import { InputError, ProtocolError } from '../../core/errors.js';
import { PAYLOAD_HEADROOM, allowInPlaceFraming } from '../../proto/index.js';
import { IPC_CONTINUATION, IPC_END_OF_STREAM } from '../../proto/ipc-message.js';
import { PayloadBuffers } from '../../proto/payload-buffers.js';

/** Payloads are filled with whole record batches up to this size. */
export const DEFAULT_TARGET_PAYLOAD_BYTES = 4 * 1024 * 1024;

export interface ShardPayload {
  /** A complete Arrow IPC stream. */
  bytes: Buffer;
  /** Rows (customers) in its record batches. */
  rows: number;
  batches: number;
  /**
   * For a reuseBuffer reader: its buffer may still be read after the reader goes on (a write given up
   * before its callback came), so the reader must never hand it out again. No effect otherwise.
   */
  abandon(): void;
}

export interface ShardPayloadOptions {
  /** Largest payload the receiver accepts (its gRPC message limit less a margin). */
  maxPayloadBytes: number;
  /** @default DEFAULT_TARGET_PAYLOAD_BYTES */
  targetPayloadBytes?: number;
  /**
   * Build every payload in one buffer, taken from a pool shared by all readers (see PayloadBuffers) and
   * given back when the reader ends: a payload's bytes are then valid only until the next payload is
   * asked for. For senders that wait for each write's callback (HTTP/2 reads a payload framed in place
   * until it has written it to the socket) and `abandon()` a payload whose write they stop waiting for.
   * @default false (each payload has a buffer of its own)
   */
  reuseBuffer?: boolean;
}

const FILE_MAGIC = Buffer.from('ARROW1');

/**
 * Reads a file at a position, synchronously: a shard is read from the page cache in well under a
 * millisecond per batch, less than the thread-pool round trip of an asynchronous read costs.
 */
class FileCursor {
  position = 0;
  constructor(
    private readonly fd: number,
    private readonly file: string,
  ) {}

  /** Reads exactly n bytes into a new buffer, or null at a clean end of file. */
  read(n: number, what: string): Buffer | null {
    const buf = Buffer.allocUnsafe(n);
    return this.readInto(buf, 0, n, what) ? buf : null;
  }

  /** Reads exactly n bytes into buf at offset; false at a clean end of file. */
  readInto(buf: Buffer, offset: number, n: number, what: string): boolean {
    let got = 0;
    while (got < n) {
      const bytesRead = readSync(this.fd, buf, offset + got, n - got, this.position + got);
      if (bytesRead === 0) {
        if (got === 0) return false;
        throw new InputError(`shard file ${this.file} is truncated: ${what} at byte ${this.position} needs ${n} bytes, found ${got}`);
      }
      got += bytesRead;
    }
    this.position += n;
    return true;
  }
}

/** One message of the file, its body not read yet. */
interface MessageHead {
  type: MessageHeader;
  meta: Buffer;
  bodyLength: number;
  rows: number;
  /** Framed size in a stream: continuation, length, metadata, body. */
  length: number;
  /** Writes the framed message (prefix, metadata, body read from the file) into buf at offset. Call before the next message. */
  writeTo(buf: Buffer, offset: number): void;
}

function* messageHeads(file: string, fd: number): Generator<MessageHead> {
  const cursor = new FileCursor(fd, file);
  const head = cursor.read(8, 'the first message');
  if (!head) throw new InputError(`shard file ${file} is empty: rebuild the shards`);
  const isIpcFile = head.subarray(0, 6).equals(FILE_MAGIC);
  if (!isIpcFile) cursor.position = 0; // IPC stream: start over; IPC file: skip the magic, a stream follows
  let first = true;
  for (;;) {
    const prefix = cursor.read(4, 'a message length');
    if (!prefix) return; // stream written without an end marker
    // Current framing is continuation marker + length; pre-1.0 writers wrote the length alone.
    let metaLength = prefix.readInt32LE(0);
    if (prefix.readUInt32LE(0) === IPC_CONTINUATION) {
      const length = cursor.read(4, 'a message length');
      if (!length) return;
      metaLength = length.readInt32LE(0);
    }
    if (metaLength === 0) return; // end-of-stream marker (an IPC file's footer follows it)
    if (metaLength < 0) throw new InputError(`shard file ${file} has a message of negative length at byte ${cursor.position}: not an Arrow IPC stream`);
    const meta = cursor.read(metaLength, 'message metadata');
    if (!meta) throw new InputError(`shard file ${file} ends inside a message`);
    let message: Message;
    try {
      message = Message.decode(meta);
    } catch (e) {
      throw new InputError(`shard file ${file} has unreadable Arrow metadata at byte ${cursor.position - metaLength}: ${(e as Error).message}`);
    }
    if (first && isIpcFile && message.headerType !== MessageHeader.Schema) {
      throw new InputError(`shard file ${file} is an Arrow IPC file with its schema in the footer only: write shards as IPC streams (RecordBatchStreamWriter)`);
    }
    first = false;
    const bodyLength = Number(message.bodyLength);
    const bodyAt = cursor.position;
    let bodyRead = false;
    yield {
      type: message.headerType,
      meta,
      bodyLength,
      rows: message.isRecordBatch() ? Number(message.header().length) : 0,
      length: 8 + metaLength + bodyLength,
      writeTo(buf, offset) {
        buf.writeUInt32LE(IPC_CONTINUATION, offset);
        buf.writeInt32LE(metaLength, offset + 4);
        meta.copy(buf, offset + 8);
        if (bodyLength > 0 && !(cursor.readInto(buf, offset + 8 + metaLength, bodyLength, 'a message body'))) {
          throw new InputError(`shard file ${file} ends before a message body`);
        }
        bodyRead = true;
      },
    };
    if (!bodyRead) cursor.position = bodyAt + bodyLength;
  }
}

/** Payload buffers of reuseBuffer readers, shared by all of them. */
const reusedBuffers = new PayloadBuffers();

/** The payload being filled: PAYLOAD_HEADROOM free bytes, the preamble, the batches so far. */
class PayloadBuilder {
  private buffer: Buffer | null = null;
  private end = 0;
  rows = 0;
  batches = 0;

  constructor(
    private readonly capacity: number,
    private readonly reuse: boolean,
  ) {}

  /** Gives a reused buffer back to the pool (the reader is done with it). */
  release(): void {
    if (this.reuse && this.buffer) reusedBuffers.give(this.buffer);
    this.buffer = null;
  }

  get bytes(): number {
    return this.end - PAYLOAD_HEADROOM;
  }

  /** Starts a payload with the preamble. */
  start(preamble: Buffer[]): void {
    this.buffer ??= this.allocate(this.capacity);
    this.end = PAYLOAD_HEADROOM;
    for (const p of preamble) this.append(p);
  }

  append(bytes: Readonly<Uint8Array>): void {
    this.reserve(bytes.length);
    this.buffer!.set(bytes, this.end);
    this.end += bytes.length;
  }

  appendMessage(m: MessageHead): void {
    this.reserve(m.length);
    m.writeTo(this.buffer!, this.end);
    this.end += m.length;
    this.batches++;
    this.rows += m.rows;
  }

  finish(): ShardPayload {
    this.append(IPC_END_OF_STREAM);
    const bytes = this.buffer!.subarray(PAYLOAD_HEADROOM, this.end);
    allowInPlaceFraming(bytes);
    const buffer = this.buffer;
    const payload = { bytes, rows: this.rows, batches: this.batches, abandon: () => this.abandon(buffer!) };
    if (!this.reuse) this.buffer = null;
    this.rows = 0;
    this.batches = 0;
    return payload;
  }

  /** Stops using `buffer` (never given back to the pool): the next payload is built in a new one. */
  private abandon(buffer: Buffer): void {
    if (this.buffer === buffer) this.buffer = null;
  }

  /** A pooled buffer for a reusing reader, else one of its own. */
  private allocate(bytes: number): Buffer {
    return this.reuse ? reusedBuffers.take(bytes) : Buffer.allocUnsafe(bytes);
  }

  /** Room for n more bytes and the end marker. */
  private reserve(n: number): void {
    const needed = this.end + n + IPC_END_OF_STREAM.length;
    if (needed <= this.buffer!.length) return;
    const size = Math.max(needed, 2 * this.buffer!.length);
    const grown = this.allocate(size);
    this.buffer!.copy(grown, 0, 0, this.end);
    if (this.reuse) reusedBuffers.give(this.buffer!);
    this.buffer = grown;
  }
}

/** Yields a shard file's record batches as IPC-stream payloads of at most `maxPayloadBytes`. */
export async function* readShardPayloads(file: string, o: ShardPayloadOptions): AsyncGenerator<ShardPayload> {
  const target = Math.min(o.targetPayloadBytes ?? DEFAULT_TARGET_PAYLOAD_BYTES, o.maxPayloadBytes);
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new InputError(`cannot open shard file ${file}: ${(e as Error).message}`, { cause: e });
  }
  let payload: PayloadBuilder | null = null;
  try {
    // Schema and dictionary messages open every payload, so each payload decodes on its own.
    const preamble: Buffer[] = [];
    let preambleBytes = 0;
    let sawSchema = false;
    const fileBytes = fstatSync(fd).size;
    payload = new PayloadBuilder(PAYLOAD_HEADROOM + Math.min(target, fileBytes) + IPC_END_OF_STREAM.length, o.reuseBuffer ?? false);
    let index = 0;
    for (const m of messageHeads(file, fd)) {
      if (m.type === MessageHeader.Schema || m.type === MessageHeader.DictionaryBatch) {
        if (m.type === MessageHeader.Schema) {
          if (sawSchema) throw new InputError(`shard file ${file} holds a second schema message: write one shard per file`);
          sawSchema = true;
        } else if (!sawSchema) {
          throw new InputError(`shard file ${file} does not start with an Arrow schema message`);
        }
        if (payload.batches > 0) yield payload.finish();
        const framed = Buffer.allocUnsafe(m.length);
        m.writeTo(framed, 0);
        preamble.push(framed);
        preambleBytes += m.length;
        continue;
      }
      if (!sawSchema) throw new InputError(`shard file ${file} does not start with an Arrow schema message`);
      if (m.type !== MessageHeader.RecordBatch) throw new InputError(`shard file ${file} holds an Arrow message of unexpected type ${m.type}`);
      const alone = preambleBytes + m.length + IPC_END_OF_STREAM.length;
      if (alone > o.maxPayloadBytes) {
        throw new ProtocolError(
          `shard file ${file}: record batch ${index} takes ${alone} bytes, more than the ${o.maxPayloadBytes} a worker accepts in one message: lower shards.batchRows in the job file`,
        );
      }
      if (payload.batches > 0 && payload.bytes + m.length + IPC_END_OF_STREAM.length > target) yield payload.finish();
      if (payload.batches === 0) payload.start(preamble);
      payload.appendMessage(m);
      index++;
    }
    if (!sawSchema) throw new InputError(`shard file ${file} holds no Arrow schema`);
    if (payload.batches > 0) yield payload.finish();
  } finally {
    payload?.release();
    closeSync(fd);
  }
}
