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
 * Built straight from a ScoredBatch's arrays: no JavaScript object per row.
 */
import { Field, Float32, RecordBatch, Schema, Struct, Utf8, makeData, type Data, type Vector } from 'apache-arrow';
import { ProtocolError } from '../core/errors.js';
import type { ScoredBatch } from '../worker/engine.js';
import { decodeBatches, encodeBatches } from './shard-batch.js';

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

/** Utf8 data where row r holds encoded[index(r)]: each distinct string is encoded once. */
function repeatedUtf8(encoded: Uint8Array[], rows: number, index: (row: number) => number): Data<Utf8> {
  const offsets = new Int32Array(rows + 1);
  let bytes = 0;
  for (let r = 0; r < rows; r++) {
    bytes += encoded[index(r)]!.byteLength;
    offsets[r + 1] = bytes;
  }
  const values = new Uint8Array(bytes);
  for (let r = 0; r < rows; r++) values.set(encoded[index(r)]!, offsets[r]!);
  return makeData({ type: new Utf8(), length: rows, nullCount: 0, valueOffsets: offsets, data: values });
}

const encoder = new TextEncoder();
const NON_ASCII = /[^\x00-\x7f]/;

/** Utf8 data of `strings` over and over, `cycles` times: row r holds strings[r % strings.length]. */
function cycled(strings: string[], cycles: number): Data<Utf8> {
  if (cycles === 0 || strings.length === 0) return makeData({ type: new Utf8(), length: 0, nullCount: 0, valueOffsets: new Int32Array(1), data: new Uint8Array(0) });
  const one = eachRepeated(strings, 1); // one cycle, then doubled until it covers every row
  const cycleBytes = one.valueOffsets[strings.length]!;
  const rows = strings.length * cycles;
  const offsets = new Int32Array(rows + 1);
  const values = new Uint8Array(cycleBytes * cycles);
  offsets.set(one.valueOffsets.subarray(0, strings.length + 1));
  values.set((one.values as Uint8Array).subarray(0, cycleBytes));
  for (let done = 1; done < cycles; ) {
    const n = Math.min(done, cycles - done);
    values.copyWithin(done * cycleBytes, 0, n * cycleBytes);
    const shift = done * cycleBytes;
    for (let r = 1; r <= n * strings.length; r++) offsets[done * strings.length + r] = offsets[r]! + shift;
    done += n;
  }
  return makeData({ type: new Utf8(), length: rows, nullCount: 0, valueOffsets: offsets, data: values });
}

/** Utf8 data holding each of `strings` `times` times in a row; ASCII ids (the usual case) are encoded in one call. */
function eachRepeated(strings: string[], times: number): Data<Utf8> {
  const joined = strings.join('');
  if (NON_ASCII.test(joined)) {
    const encoded = strings.map((s) => encoder.encode(s));
    return repeatedUtf8(encoded, strings.length * times, times === 1 ? (r) => r : (r) => Math.floor(r / times));
  }
  const ascii = Buffer.from(joined, 'latin1');
  const rows = strings.length * times;
  const offsets = new Int32Array(rows + 1);
  if (times === 1) {
    for (let i = 0, at = 0; i < strings.length; i++) offsets[i + 1] = at += strings[i]!.length;
    return makeData({ type: new Utf8(), length: rows, nullCount: 0, valueOffsets: offsets, data: ascii });
  }
  const values = new Uint8Array(ascii.length * times);
  let from = 0;
  let at = 0;
  let r = 0;
  for (const s of strings) {
    for (let k = 0; k < times; k++) {
      values.set(ascii.subarray(from, from + s.length), at);
      at += s.length;
      offsets[++r] = at;
    }
    from += s.length;
  }
  return makeData({ type: new Utf8(), length: rows, nullCount: 0, valueOffsets: offsets, data: values });
}

/** One result record batch from a scored shard batch (row i × column j → result row i·columns + j). */
export function buildResultBatch(scored: ScoredBatch): RecordBatch {
  const customers = scored.customerIds.length;
  const width = scored.columns.length;
  const rows = customers * width;
  if (scored.scores.length !== rows) {
    throw new ProtocolError(
      `scored batch has ${scored.scores.length} scores for ${customers} customers × ${width} columns (${rows} expected): the engine returned a malformed ScoredBatch`,
    );
  }
  const products = scored.columns.map((c) => c.product);
  const versions = scored.columns.map((c) => c.modelVersion);
  const schema = resultSchema();
  const children = [
    eachRepeated(scored.customerIds, width),
    cycled(products, customers),
    cycled(versions, customers),
    makeData({ type: new Float32(), length: rows, nullCount: 0, data: scored.scores }),
  ];
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: rows, nullCount: 0, children }));
}

export function encodeResults(batches: RecordBatch[]): Uint8Array {
  return encodeBatches(batches);
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
  const names = schema.fields.map((f) => f.name);
  if (names.length !== RESULT_FIELDS.length || RESULT_FIELDS.some((n, i) => names[i] !== n)) {
    throw new ProtocolError(`result batch has columns [${names.join(', ')}], expected [${RESULT_FIELDS.join(', ')}]`);
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
