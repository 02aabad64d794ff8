/**
 * Reads a shard file (Arrow IPC stream, or IPC file) message by message and regroups its record
 * batches into payloads: each payload is a complete IPC stream (schema, the batches, end marker)
 * that fits one gRPC message. Batch bodies are copied, never decoded: the worker decodes them.
 * One message is in memory at a time, plus the payload being filled. Payloads leave PAYLOAD_HEADROOM
 * bytes before them so the gRPC request is framed in place (see proto/index.ts).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { Message, MessageHeader } from 'apache-arrow';
import { InputError, ProtocolError } from '../../core/errors.js';
import { PAYLOAD_HEADROOM, allowInPlaceFraming } from '../../proto/index.js';

/** Payloads are filled with whole record batches up to this size. */
export const DEFAULT_TARGET_PAYLOAD_BYTES = 4 * 1024 * 1024;

export interface ShardPayload {
  /** A complete Arrow IPC stream. */
  bytes: Buffer;
  /** Rows (customers) in its record batches. */
  rows: number;
  batches: number;
}

export interface ShardPayloadOptions {
  /** Largest payload the receiver accepts (its gRPC message limit less a margin). */
  maxPayloadBytes: number;
  /** @default DEFAULT_TARGET_PAYLOAD_BYTES */
  targetPayloadBytes?: number;
}

const CONTINUATION = 0xffffffff;
const END_OF_STREAM = Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
const FILE_MAGIC = Buffer.from('ARROW1');

class FileCursor {
  position = 0;
  constructor(
    private readonly fh: FileHandle,
    private readonly file: string,
  ) {}

  /** Reads exactly n bytes into a new buffer, or null at a clean end of file. */
  async read(n: number, what: string): Promise<Buffer | null> {
    const buf = Buffer.allocUnsafe(n);
    return (await this.readInto(buf, 0, n, what)) ? buf : null;
  }

  /** Reads exactly n bytes into buf at offset; false at a clean end of file. */
  async readInto(buf: Buffer, offset: number, n: number, what: string): Promise<boolean> {
    let got = 0;
    while (got < n) {
      const { bytesRead } = await this.fh.read(buf, offset + got, n - got, this.position + got);
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

interface RawMessage {
  type: MessageHeader;
  /** Holds the message, as framed in a stream (continuation, length, metadata, body), at [start, start + length). */
  frame: Buffer;
  start: number;
  length: number;
  rows: number;
}

/**
 * Reads messages one by one. Each lands in its own buffer with `room()` bytes free before it and
 * END_OF_STREAM's length after it, so a payload of one batch is assembled around it without a copy.
 */
async function* rawMessages(file: string, fh: FileHandle, room: () => number): AsyncGenerator<RawMessage> {
  const cursor = new FileCursor(fh, file);
  const head = await cursor.read(8, 'the first message');
  if (!head) throw new InputError(`shard file ${file} is empty: rebuild the shards`);
  const isIpcFile = head.subarray(0, 6).equals(FILE_MAGIC);
  if (!isIpcFile) cursor.position = 0; // IPC stream: start over; IPC file: skip the magic, a stream follows
  let first = true;
  for (;;) {
    const prefix = await cursor.read(4, 'a message length');
    if (!prefix) return; // stream written without an end marker
    // Current framing is continuation marker + length; pre-1.0 writers wrote the length alone.
    let metaLength = prefix.readInt32LE(0);
    if (prefix.readUInt32LE(0) === CONTINUATION) {
      const length = await cursor.read(4, 'a message length');
      if (!length) return;
      metaLength = length.readInt32LE(0);
    }
    if (metaLength === 0) return; // end-of-stream marker (an IPC file's footer follows it)
    if (metaLength < 0) throw new InputError(`shard file ${file} has a message of negative length at byte ${cursor.position}: not an Arrow IPC stream`);
    const meta = await cursor.read(metaLength, 'message metadata');
    if (!meta) throw new InputError(`shard file ${file} ends inside a message`);
    let message: Message;
    try {
      message = Message.decode(meta);
    } catch (e) {
      throw new InputError(`shard file ${file} has unreadable Arrow metadata at byte ${cursor.position - metaLength}: ${(e as Error).message}`);
    }
    const bodyLength = Number(message.bodyLength);
    const isBatch = message.headerType === MessageHeader.RecordBatch;
    const start = isBatch ? room() : 0;
    const length = 8 + metaLength + bodyLength;
    const frame = Buffer.allocUnsafe(start + length + (isBatch ? END_OF_STREAM.length : 0));
    frame.writeUInt32LE(CONTINUATION, start);
    frame.writeInt32LE(metaLength, start + 4);
    meta.copy(frame, start + 8);
    if (bodyLength > 0 && !(await cursor.readInto(frame, start + 8 + metaLength, bodyLength, 'a message body'))) {
      throw new InputError(`shard file ${file} ends before a message body`);
    }
    if (first && isIpcFile && message.headerType !== MessageHeader.Schema) {
      throw new InputError(`shard file ${file} is an Arrow IPC file with its schema in the footer only: write shards as IPC streams (RecordBatchStreamWriter)`);
    }
    first = false;
    const rows = message.isRecordBatch() ? Number(message.header().length) : 0;
    yield { type: message.headerType, frame, start, length, rows };
  }
}

const bytesOf = (m: RawMessage) => m.frame.subarray(m.start, m.start + m.length);

/** Yields a shard file's record batches as IPC-stream payloads of at most `maxPayloadBytes`. */
export async function* readShardPayloads(file: string, o: ShardPayloadOptions): AsyncGenerator<ShardPayload> {
  const target = Math.min(o.targetPayloadBytes ?? DEFAULT_TARGET_PAYLOAD_BYTES, o.maxPayloadBytes);
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    throw new InputError(`cannot open shard file ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    // Schema and dictionary messages open every payload, so each payload decodes on its own.
    const preamble: Buffer[] = [];
    let preambleBytes = 0;
    let group: RawMessage[] = [];
    let groupBytes = 0;
    let groupRows = 0;
    let sawSchema = false;
    const flush = (): ShardPayload => {
      const only = group.length === 1 ? group[0]! : null;
      let bytes: Buffer;
      if (only && only.start >= PAYLOAD_HEADROOM + preambleBytes) {
        // The common case, one batch per payload: preamble and end marker go around it in place.
        let at = only.start - preambleBytes;
        for (const p of preamble) at += p.copy(only.frame, at);
        END_OF_STREAM.copy(only.frame, only.start + only.length);
        bytes = only.frame.subarray(only.start - preambleBytes, only.start + only.length + END_OF_STREAM.length);
      } else {
        const frame = Buffer.allocUnsafe(PAYLOAD_HEADROOM + preambleBytes + groupBytes + END_OF_STREAM.length);
        let at = PAYLOAD_HEADROOM;
        for (const p of preamble) at += p.copy(frame, at);
        for (const m of group) at += bytesOf(m).copy(frame, at);
        END_OF_STREAM.copy(frame, at);
        bytes = frame.subarray(PAYLOAD_HEADROOM);
      }
      allowInPlaceFraming(bytes);
      const payload = { bytes, rows: groupRows, batches: group.length };
      group = [];
      groupBytes = 0;
      groupRows = 0;
      return payload;
    };
    let index = 0;
    for await (const m of rawMessages(file, fh, () => PAYLOAD_HEADROOM + preambleBytes)) {
      if (m.type === MessageHeader.Schema) {
        if (sawSchema) throw new InputError(`shard file ${file} holds a second schema message: write one shard per file`);
        sawSchema = true;
        preamble.push(bytesOf(m));
        preambleBytes += m.length;
        continue;
      }
      if (!sawSchema) throw new InputError(`shard file ${file} does not start with an Arrow schema message`);
      if (m.type === MessageHeader.DictionaryBatch) {
        if (group.length > 0) yield flush();
        preamble.push(bytesOf(m));
        preambleBytes += m.length;
        continue;
      }
      if (m.type !== MessageHeader.RecordBatch) throw new InputError(`shard file ${file} holds an Arrow message of unexpected type ${m.type}`);
      const alone = preambleBytes + m.length + END_OF_STREAM.length;
      if (alone > o.maxPayloadBytes) {
        throw new ProtocolError(
          `shard file ${file}: record batch ${index} takes ${alone} bytes, more than the ${o.maxPayloadBytes} a worker accepts in one message: lower shards.batchRows in the job file`,
        );
      }
      if (group.length > 0 && preambleBytes + groupBytes + m.length + END_OF_STREAM.length > target) yield flush();
      group.push(m);
      groupBytes += m.length;
      groupRows += m.rows;
      index++;
    }
    if (!sawSchema) throw new InputError(`shard file ${file} holds no Arrow schema`);
    if (group.length > 0) yield flush();
  } finally {
    await fh.close();
  }
}
