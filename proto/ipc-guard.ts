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

export function checkIpcStream(bytes: Uint8Array): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const total = bytes.byteLength;
  const bad = (at: number, why: string): never => {
    throw new ProtocolError(`malformed Arrow IPC payload (${total} bytes): ${why} at byte ${at}`);
  };
  let at = 0;
  while (at < total) {
    if (total - at < 4) bad(at, 'truncated message prefix');
    let metaLength = view.getInt32(at, true);
    at += 4;
    if (metaLength === -1) {
      if (total - at < 4) bad(at, 'truncated message length');
      metaLength = view.getInt32(at, true);
      at += 4;
    }
    if (metaLength === 0) return; // end of stream
    if (metaLength < 0 || metaLength > total - at) bad(at, `message metadata of ${metaLength} bytes, ${total - at} left`);
    const meta = bytes.subarray(at, at + metaLength);
    let body: number;
    try {
      body = checkMessage(meta);
    } catch (e) {
      if (e instanceof ProtocolError) bad(at, e.message);
      bad(at, `unreadable message metadata (${(e as Error).message})`);
    }
    at += metaLength;
    if (body! > total - at) bad(at, `message body of ${body!} bytes, ${total - at} left`);
    at += body!;
  }
}

/** Checks one message's metadata; returns its body length. */
function checkMessage(meta: Uint8Array): number {
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
  switch (message.headerType()) {
    case MessageHeader.Schema: {
      const schema = message.header(new Schema()) as Schema | null;
      if (!schema) throw new ProtocolError('schema message without a schema');
      count('schema custom metadata', schema.customMetadataLength());
      count('schema field', schema.fieldsLength());
      for (let i = 0; i < schema.fieldsLength(); i++) checkField(schema.fields(i, new Field()), 1, count);
      return bodyLength;
    }
    case MessageHeader.RecordBatch: {
      checkBatch(message.header(new RecordBatch()) as RecordBatch | null, count, maxRows);
      return bodyLength;
    }
    case MessageHeader.DictionaryBatch: {
      const dict = message.header(new DictionaryBatch()) as DictionaryBatch | null;
      checkBatch(dict?.data(new RecordBatch()) ?? null, count, maxRows);
      return bodyLength;
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

function checkBatch(batch: RecordBatch | null, count: Count, maxRows: number): void {
  if (!batch) throw new ProtocolError('record batch message without a batch');
  count('row', Number(batch.length()), maxRows);
  count('field node', batch.nodesLength());
  count('buffer', batch.buffersLength());
  for (let i = 0; i < batch.nodesLength(); i++) count('node row', Number(batch.nodes(i)!.length()), maxRows);
}
