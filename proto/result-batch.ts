/**
 * The result batch: what a worker streams back for every shard batch it scores.
 *
 * Columns (one row per customer × model version × product, customer-major):
 *   customer_id    Utf8
 *   product        Utf8
 *   model_version  Utf8
 *   score          Float32   probability in [0, 1]
 *
 * Schema metadata: nextbuy.result_schema ("1").
 * Workers write result streams straight from the shard batch's id bytes and a ScoredBatch's arrays, into
 * one buffer: no JavaScript object or string per row, and no Arrow writer (which re-encodes the schema
 * and visits every column for each stream). The coordinator checks each reply's stream and joins a
 * shard's replies without decoding them (ShardResults); result files are read with Arrow's reader.
 */
import { Field, Float32, Message, RecordBatch, Schema, Struct, Utf8, makeData, type Vector } from 'apache-arrow';
import { MessageHeader } from 'apache-arrow/fb/message-header';
import { ProtocolError } from '../core/errors.js';
import { checkIpcStream } from './ipc-guard.js';
import type { PayloadBuffers } from './payload-buffers.js';
import type { ScoredBatch } from '../worker/engine.js';
import { IPC_END_OF_STREAM, alignedToIpc, recordBatchMessage, type BufferLayout } from './ipc-message.js';
import { decodeBatches, encodeBatches, utf8BytesOf, type Utf8Bytes } from './shard-batch.js';

export const RESULT_SCHEMA_VERSION = '1';

const RESULT_FIELDS = ['customer_id', 'product', 'model_version', 'score'] as const;

let cachedSchema: Schema | undefined;

export function resultSchema(): Schema {
  cachedSchema ??= new Schema(
    [
      new Field('customer_id', new Utf8(), false),
      new Field('product', new Utf8(), false),
      new Field('model_version', new Utf8(), false),
      new Field('score', new Float32(), false),
    ],
    new Map([['nextbuy.result_schema', RESULT_SCHEMA_VERSION]]),
  );
  return cachedSchema;
}

/** One scored shard batch: its customers' ids (UTF-8) and what the engine scored for them. */
export interface ScoredRows {
  customerIds: Utf8Bytes;
  scored: ScoredBatch;
}

let schemaMessage: Uint8Array | undefined;

/** The result schema's IPC message, encoded by Arrow once: the same bytes start every result stream. */
function resultSchemaMessage(): Uint8Array {
  if (!schemaMessage) {
    const schema = resultSchema();
    const children = schema.fields.map((f) => makeData({ type: f.type, length: 0, nullCount: 0 }));
    const stream = encodeBatches([new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: 0, nullCount: 0, children }))]);
    const metadataLength = new DataView(stream.buffer, stream.byteOffset).getInt32(4, true);
    schemaMessage = stream.slice(0, 8 + metadataLength); // a schema message has no body
  }
  return schemaMessage;
}

/** One result batch laid out: body buffer sizes, then where each lies. */
class ResultBatchLayout {
  readonly rows: number;
  readonly width: number;
  readonly products: Utf8Bytes;
  readonly versions: Utf8Bytes;
  readonly buffers: BufferLayout[] = [];
  readonly bodyLength: number;
  readonly message: Uint8Array;

  constructor(readonly part: ScoredRows) {
    const { customerIds, scored } = part;
    const customers = customerIds.length;
    this.width = scored.columns.length;
    this.rows = customers * this.width;
    if (scored.scores.length !== this.rows) {
      throw new ProtocolError(
        `scored batch has ${scored.scores.length} scores for ${customers} customers × ${this.width} columns (${this.rows} expected): the engine returned a malformed ScoredBatch`,
      );
    }
    this.products = utf8BytesOf(scored.columns.map((c) => c.product));
    this.versions = utf8BytesOf(scored.columns.map((c) => c.modelVersion));
    const offsetBytes = (this.rows + 1) * 4;
    // Body buffers in schema order: validity (empty: no nulls), offsets and bytes of each Utf8 column; validity and scores.
    const lengths = [
      ...[0, offsetBytes, (customerIds.offsets[customers]! - customerIds.offsets[0]!) * this.width],
      ...[0, offsetBytes, this.products.offsets[this.width]! * customers],
      ...[0, offsetBytes, this.versions.offsets[this.width]! * customers],
      ...[0, this.rows * 4],
    ];
    let at = 0;
    for (const length of lengths) {
      this.buffers.push({ offset: at, length });
      at += alignedToIpc(length);
    }
    this.bodyLength = at;
    const nodes = RESULT_FIELDS.map(() => ({ length: this.rows, nullCount: 0 }));
    this.message = recordBatchMessage(this.rows, nodes, this.buffers, this.bodyLength);
  }

  /** Writes the message and body at `at` of `out` (zeroed); returns where it ends. */
  writeTo(out: Uint8Array, at: number): number {
    out.set(this.message, at);
    const body = at + this.message.byteLength;
    const offsetsAt = (buffer: number) => new Int32Array(out.buffer, out.byteOffset + body + this.buffers[buffer]!.offset, this.rows + 1);
    const bytesAt = (buffer: number) => body + this.buffers[buffer]!.offset;
    writeEachIdRepeated(this.part.customerIds, this.width, offsetsAt(1), out, bytesAt(2));
    writeCycled(this.products, this.part.customerIds.length, offsetsAt(4), out, bytesAt(5));
    writeCycled(this.versions, this.part.customerIds.length, offsetsAt(7), out, bytesAt(8));
    const scores = this.part.scored.scores;
    out.set(new Uint8Array(scores.buffer, scores.byteOffset, this.rows * 4), bytesAt(10));
    return body + this.bodyLength;
  }
}

/** Each id `times` times in a row (a customer's row for every column), ids' offsets rebased to 0. */
function writeEachIdRepeated(ids: Utf8Bytes, times: number, offsets: Int32Array, out: Uint8Array, at: number): void {
  const first = ids.offsets[0]!;
  if (times === 1) {
    for (let i = 1; i <= ids.length; i++) offsets[i] = ids.offsets[i]! - first;
    out.set(ids.values.subarray(first, ids.offsets[ids.length]), at);
    return;
  }
  let written = 0;
  let row = 0;
  for (let i = 0; i < ids.length; i++) {
    const start = ids.offsets[i]!;
    const end = ids.offsets[i + 1]!;
    for (let k = 0; k < times; k++) {
      for (let b = start; b < end; b++) out[at + written++] = ids.values[b]!;
      offsets[++row] = written;
    }
  }
}

/** `strings` over and over, `cycles` times: row r holds string r % strings.length. */
function writeCycled(strings: Utf8Bytes, cycles: number, offsets: Int32Array, out: Uint8Array, at: number): void {
  const cycleBytes = strings.offsets[strings.length]!;
  let row = 0;
  for (let c = 0; c < cycles; c++) {
    for (let j = 1; j <= strings.length; j++) offsets[++row] = c * cycleBytes + strings.offsets[j]!;
  }
  if (cycles === 0 || cycleBytes === 0) return;
  out.set(strings.values.subarray(0, cycleBytes), at);
  // Doubled until it covers every cycle.
  for (let done = 1; done < cycles; ) {
    const n = Math.min(done, cycles - done);
    out.copyWithin(at + done * cycleBytes, at, at + n * cycleBytes);
    done += n;
  }
}

export interface EncodeResultsOptions {
  /** Free bytes kept before the stream in its buffer, for a sender that frames it in place (proto/in-place-framing.ts). @default 0 */
  headroom?: number;
  /** Take the buffer from this pool (the caller gives it back once the stream is sent). @default a new buffer */
  buffers?: PayloadBuffers;
}

/**
 * The results of one Score payload as an Arrow IPC stream (the result schema, a record batch per
 * scored shard batch, end of stream), written straight from the ids' bytes and the engines' scores:
 * one row per customer × (model version, product) column, customer-major.
 */
export function encodeResults(parts: readonly ScoredRows[], o: EncodeResultsOptions = {}): Buffer {
  const schema = resultSchemaMessage();
  const layouts = parts.map((p) => new ResultBatchLayout(p));
  const total = schema.byteLength + layouts.reduce((n, l) => n + l.message.byteLength + l.bodyLength, 0) + IPC_END_OF_STREAM.byteLength;
  const start = alignedToIpc(o.headroom ?? 0); // the stream starts 8-byte aligned in its buffer, as Arrow's offsets assume
  const out = o.buffers ? o.buffers.take(start + total).subarray(start, start + total).fill(0) : Buffer.alloc(start + total).subarray(start); // zeroed: the padding between buffers
  out.set(schema, 0);
  let at = schema.byteLength;
  for (const l of layouts) at = l.writeTo(out, at);
  out.set(IPC_END_OF_STREAM, at);
  return out;
}

/** Parses result bytes and checks they carry the result schema; anything else is a ProtocolError. */
export function decodeResults(bytes: Uint8Array): RecordBatch[] {
  const batches = decodeBatches(bytes);
  for (const b of batches) checkResultSchema(b.schema);
  return batches;
}

export function checkResultSchema(schema: Schema): void {
  const version = schema.metadata.get('nextbuy.result_schema');
  if (version !== RESULT_SCHEMA_VERSION) {
    throw new ProtocolError(
      `result batch has schema version "${version ?? 'none'}", this nextbuy reads "${RESULT_SCHEMA_VERSION}": run the same nextbuy version on the coordinator and the workers`,
    );
  }
  const columns = (s: Schema) => s.fields.map((f) => `${f.name}: ${f.type}`);
  const [got, expected] = [columns(schema), columns(resultSchema())];
  if (got.join(', ') !== expected.join(', ')) throw new ProtocolError(`result batch has columns [${got.join(', ')}], expected [${expected.join(', ')}]`);
}

/** Body buffers of a result batch: validity, offsets and bytes of three Utf8 columns; validity and values of the scores. */
const RESULT_BUFFERS = 3 * 3 + 2;

/** Checks a result stream's schema message: the bytes this nextbuy writes, or a schema that reads the same. */
function checkResultSchemaMessage(message: Uint8Array): void {
  const ours = resultSchemaMessage();
  if (message.byteLength === ours.byteLength && Buffer.compare(message, ours) === 0) return;
  const metadataLength = new DataView(message.buffer, message.byteOffset).getInt32(4, true);
  const decoded = Message.decode(message.subarray(8, 8 + metadataLength));
  if (!decoded.isSchema()) throw new ProtocolError('result stream does not start with a schema');
  checkResultSchema(decoded.header());
}

/**
 * A shard's results: the result streams of its Score replies joined into one Arrow IPC stream, without
 * decoding them. Each reply is checked (structure, schema, record batches of the result layout only);
 * its record batch messages are kept as they arrived, and the result schema is written once in front.
 */
export class ShardResults {
  private readonly messages: Uint8Array[] = [];
  private messageBytes = 0;
  /** Result rows added so far. */
  rows = 0;

  /** Adds one reply's result stream; returns its rows. A stream that is not a result stream is a ProtocolError. */
  add(stream: Uint8Array): number {
    const spans = checkIpcStream(stream);
    const [schema, ...batches] = spans;
    if (schema?.headerType !== MessageHeader.Schema) throw new ProtocolError('result stream does not start with a schema');
    checkResultSchemaMessage(stream.subarray(schema.start, schema.end));
    let rows = 0;
    for (const b of batches) {
      if (b.headerType !== MessageHeader.RecordBatch) throw new ProtocolError(`result stream holds a message of type ${b.headerType}: results are record batches only`);
      if (b.nodes !== RESULT_FIELDS.length || b.buffers !== RESULT_BUFFERS) {
        throw new ProtocolError(`result batch has ${b.nodes} columns in ${b.buffers} buffers, expected ${RESULT_FIELDS.length} in ${RESULT_BUFFERS}`);
      }
      rows += b.rows;
    }
    for (const b of batches) {
      this.messages.push(stream.subarray(b.start, b.end));
      this.messageBytes += b.end - b.start;
    }
    this.rows += rows;
    return rows;
  }

  /** One Arrow IPC stream: the result schema, every batch in the order added, end of stream. */
  toStream(): Buffer {
    const schema = resultSchemaMessage();
    const out = Buffer.allocUnsafe(schema.byteLength + this.messageBytes + IPC_END_OF_STREAM.byteLength);
    out.set(schema, 0);
    let at = schema.byteLength;
    for (const m of this.messages) {
      out.set(m, at);
      at += m.byteLength;
    }
    out.set(IPC_END_OF_STREAM, at);
    return out;
  }
}

/** A result batch's columns as arrays (strings decoded once per row; use for checks and small outputs). */
export interface ResultColumns {
  customerIds: string[];
  products: string[];
  modelVersions: string[];
  scores: Float32Array;
}

export function readResultColumns(batch: RecordBatch): ResultColumns {
  const strings = (name: string): string[] => {
    const v = batch.getChild(name) as Vector<Utf8> | null;
    if (!v) throw new ProtocolError(`result batch has no column "${name}"`);
    return v.toArray() as unknown as string[];
  };
  const score = batch.getChild('score');
  if (!score) throw new ProtocolError('result batch has no column "score"');
  return {
    customerIds: strings('customer_id'),
    products: strings('product'),
    modelVersions: strings('model_version'),
    scores: score.toArray() as Float32Array,
  };
}
