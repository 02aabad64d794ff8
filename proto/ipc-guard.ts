/**
 * A structural check of an Arrow IPC stream before apache-arrow decodes it. Arrow's reader trusts the
 * counts inside each message's flatbuffer: a corrupted count (a schema "with" a billion fields, a batch
 * "of" 2^40 rows) makes it loop and allocate until the process dies (found by test/fuzz-arrow.test.ts).
 * Every count here must fit in the bytes actually received; anything else is a ProtocolError.
 */
import * as flatbuffers from 'flatbuffers';
import { Message } from 'apache-arrow/fb/message';
import { MessageHeader } from 'apache-arrow/fb/message-header';
import { Schema } from 'apache-arrow/fb/schema';
import { Field } from 'apache-arrow/fb/field';
import { RecordBatch } from 'apache-arrow/fb/record-batch';
import { DictionaryBatch } from 'apache-arrow/fb/dictionary-batch';
import { ProtocolError } from '../core/errors.js';

/** Deepest nesting of fields a shard schema can have (List<Int32> is depth 2). */
const MAX_FIELD_DEPTH = 16;

/** Where one message of a checked stream lies: metadata and body, from its continuation marker on. */
export interface IpcMessageSpan {
  headerType: MessageHeader;
  start: number;
  end: number;
  /** Record batches: rows, field nodes and body buffers the header declares. */
  rows: number;
  nodes: number;
  buffers: number;
}

/** Checks the stream and returns its messages (the end-of-stream marker, if any, not among them). */
export function checkIpcStream(bytes: Uint8Array): IpcMessageSpan[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const total = bytes.byteLength;
  const bad = (at: number, why: string): never => {
    throw new ProtocolError(`malformed Arrow IPC payload (${total} bytes): ${why} at byte ${at}`);
  };
  const spans: IpcMessageSpan[] = [];
  let at = 0;
  while (at < total) {
    const start = at;
    if (total - at < 4) bad(at, 'truncated message prefix');
    let metaLength = view.getInt32(at, true);
    at += 4;
    if (metaLength === -1) {
      if (total - at < 4) bad(at, 'truncated message length');
      metaLength = view.getInt32(at, true);
      at += 4;
    }
    if (metaLength === 0) return spans; // end of stream
    if (metaLength < 0 || metaLength > total - at) bad(at, `message metadata of ${metaLength} bytes, ${total - at} left`);
    const meta = bytes.subarray(at, at + metaLength);
    let message: CheckedMessage;
    try {
      message = checkMessage(meta);
    } catch (e) {
      if (e instanceof ProtocolError) bad(at, e.message);
      bad(at, `unreadable message metadata (${(e as Error).message})`);
    }
    at += metaLength;
    const { bodyLength, ...counts } = message!;
    if (bodyLength > total - at) bad(at, `message body of ${bodyLength} bytes, ${total - at} left`);
    at += bodyLength;
    spans.push({ ...counts, start, end: at });
  }
  return spans;
}

interface CheckedMessage {
  headerType: MessageHeader;
  bodyLength: number;
  rows: number;
  nodes: number;
  buffers: number;
}

/** Checks one message's metadata; returns its type, body length and (record batches) counts. */
function checkMessage(meta: Uint8Array): CheckedMessage {
  if (meta.byteLength < 8) throw new ProtocolError('message metadata too short');
  const bb = new flatbuffers.ByteBuffer(meta);
  const root = bb.readUint32(0);
  if (root >= meta.byteLength) throw new ProtocolError('flatbuffer root outside the metadata');
  const message = Message.getRootAsMessage(bb);
  const bodyLength = Number(message.bodyLength());
  if (!Number.isSafeInteger(bodyLength) || bodyLength < 0) throw new ProtocolError(`body length ${message.bodyLength()}`);
  // A count of n entries needs at least n × 4 bytes of metadata (offsets or structs); a row needs at least a bit of body.
  const maxEntries = meta.byteLength / 4;
  const maxRows = Math.max(1, bodyLength) * 8;
  const count = (what: string, n: number, max = maxEntries) => {
    if (!Number.isSafeInteger(n) || n < 0 || n > max) throw new ProtocolError(`${what} count ${n} cannot fit in the payload`);
  };
  count('message custom metadata', message.customMetadataLength());
  const headerType = message.headerType();
  switch (headerType) {
    case MessageHeader.Schema: {
      const schema = message.header(new Schema()) as Schema | null;
      if (!schema) throw new ProtocolError('schema message without a schema');
      count('schema custom metadata', schema.customMetadataLength());
      count('schema field', schema.fieldsLength());
      for (let i = 0; i < schema.fieldsLength(); i++) checkField(schema.fields(i, new Field()), 1, count);
      return { headerType, bodyLength, rows: 0, nodes: 0, buffers: 0 };
    }
    case MessageHeader.RecordBatch: {
      return { headerType, bodyLength, ...checkBatch(message.header(new RecordBatch()) as RecordBatch | null, count, maxRows, bodyLength) };
    }
    case MessageHeader.DictionaryBatch: {
      const dict = message.header(new DictionaryBatch()) as DictionaryBatch | null;
      return { headerType, bodyLength, ...checkBatch(dict?.data(new RecordBatch()) ?? null, count, maxRows, bodyLength) };
    }
    default:
      throw new ProtocolError(`message type ${message.headerType()} is not a schema or a record batch`);
  }
}

type Count = (what: string, n: number, max?: number) => void;

function checkField(field: Field | null, depth: number, count: Count): void {
  if (!field) throw new ProtocolError('missing field');
  if (depth > MAX_FIELD_DEPTH) throw new ProtocolError(`fields nested deeper than ${MAX_FIELD_DEPTH}`);
  count('field custom metadata', field.customMetadataLength());
  count('field children', field.childrenLength());
  for (let i = 0; i < field.childrenLength(); i++) checkField(field.children(i, new Field()), depth + 1, count);
}

function checkBatch(batch: RecordBatch | null, count: Count, maxRows: number, bodyLength: number): { rows: number; nodes: number; buffers: number } {
  if (!batch) throw new ProtocolError('record batch message without a batch');
  const rows = Number(batch.length());
  count('row', rows, maxRows);
  count('field node', batch.nodesLength());
  count('buffer', batch.buffersLength());
  for (let i = 0; i < batch.nodesLength(); i++) count('node row', Number(batch.nodes(i)!.length()), maxRows);
  for (let i = 0; i < batch.buffersLength(); i++) {
    const b = batch.buffers(i)!;
    const [offset, length] = [Number(b.offset()), Number(b.length())];
    if (!(offset >= 0 && length >= 0 && offset + length <= bodyLength)) throw new ProtocolError(`buffer ${i} (bytes ${offset} to ${offset + length}) lies outside the ${bodyLength}-byte body`);
  }
  return { rows, nodes: batch.nodesLength(), buffers: batch.buffersLength() };
}
