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
 * Built straight from the shard batch's id bytes and a ScoredBatch's arrays: no JavaScript object or string per row.
 */
import { Field, Float32, RecordBatch, Schema, Struct, Utf8, makeData, type Data, type Vector } from 'apache-arrow';
import { ProtocolError } from '../core/errors.js';
import type { ScoredBatch } from '../worker/engine.js';
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

/**
 * The last few cycled columns: a worker scores batch after batch of the same size for the same products
 * and model versions, and Arrow data is immutable, so one column serves them all.
 */
const cycledColumns = new Map<string, Data<Utf8>>();
const CYCLED_COLUMNS_KEPT = 8;

/** Utf8 data of `strings` over and over, `cycles` times: row r holds strings[r % strings.length]. */
function cycled(strings: string[], cycles: number): Data<Utf8> {
  const key = JSON.stringify([cycles, strings]);
  let data = cycledColumns.get(key);
  if (!data) {
    data = buildCycled(strings, cycles);
    if (cycledColumns.size >= CYCLED_COLUMNS_KEPT) cycledColumns.delete(cycledColumns.keys().next().value!);
    cycledColumns.set(key, data);
  }
  return data;
}

function buildCycled(strings: string[], cycles: number): Data<Utf8> {
  const one = utf8BytesOf(strings);
  const cycleBytes = one.offsets[strings.length]!;
  const rows = strings.length * cycles;
  const offsets = new Int32Array(rows + 1);
  const values = new Uint8Array(cycleBytes * cycles);
  if (cycles > 0) {
    offsets.set(one.offsets);
    values.set(one.values);
  }
  // Doubled until it covers every row.
  for (let done = 1; done < cycles; ) {
    const n = Math.min(done, cycles - done);
    values.copyWithin(done * cycleBytes, 0, n * cycleBytes);
    const shift = done * cycleBytes;
    for (let r = 1; r <= n * strings.length; r++) offsets[done * strings.length + r] = offsets[r]! + shift;
    done += n;
  }
  return makeData({ type: new Utf8(), length: rows, nullCount: 0, valueOffsets: offsets, data: values });
}

/** Utf8 data holding each id `times` times in a row; with times 1, the id bytes themselves. */
function eachIdRepeated(ids: Utf8Bytes, times: number): Data<Utf8> {
  const first = ids.offsets[0]!;
  const bytes = ids.offsets[ids.length]! - first;
  const offsets = new Int32Array(ids.length * times + 1);
  if (times === 1) {
    for (let i = 1; i <= ids.length; i++) offsets[i] = ids.offsets[i]! - first;
    return makeData({ type: new Utf8(), length: ids.length, nullCount: 0, valueOffsets: offsets, data: ids.values.subarray(first, first + bytes) });
  }
  const values = new Uint8Array(bytes * times);
  let at = 0;
  let r = 0;
  for (let i = 0; i < ids.length; i++) {
    const id = ids.values.subarray(ids.offsets[i]!, ids.offsets[i + 1]!);
    for (let k = 0; k < times; k++) {
      values.set(id, at);
      at += id.length;
      offsets[++r] = at;
    }
  }
  return makeData({ type: new Utf8(), length: ids.length * times, nullCount: 0, valueOffsets: offsets, data: values });
}

/** One result record batch from a scored shard batch (row i × column j → result row i·columns + j). */
export function buildResultBatch(customerIds: Utf8Bytes, scored: ScoredBatch): RecordBatch {
  const customers = customerIds.length;
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
    eachIdRepeated(customerIds, width),
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
