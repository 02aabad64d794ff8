/**
 * The shard batch: the Arrow record batch the coordinator builds from DuckDB and ships to workers,
 * and its dense, left-padded form (SequenceBatch) that models consume.
 *
 * Columns (one row per customer, lists in chronological order, at most max_length long):
 *   customer_id     Utf8
 *   history_length  Int32          events in the lookback window before truncation (0: no recent events)
 *   item            List<Int32>    token ids (0 = pad, 1 = unknown); present when the job maps an item column
 *   category        List<Int32>    token ids; present when the job maps a category column
 *   event           List<Int32>    event-type token ids
 *   dt              List<Float32>  log1p(seconds since the customer's previous event), 0 for the first
 *   age             List<Float32>  log1p(seconds from the event to the as-of time)
 *   num_<column>    List<Float32>  one per numeric feature: sign(x)·log1p(|x|)
 *   wide            List<Float32>  the aggregate features (coordinator/features), exactly products × W values,
 *                                  product-major, already transformed for the models
 *   labels          List<Int8>     training/evaluation shards only: one label per product, in metadata order
 *   weight          Float32        sampling weight (1, or 1/negativeRate for kept negatives)
 *   split           Int8           0 = train, 1 = validation (by customer hash)
 *   snapshot        Int8           0 = the set's as-of date; k = the k-th earlier training snapshot (as of D − (k+1)·H)
 *
 * Schema metadata: nextbuy.shard_schema ("2"), nextbuy.products (JSON array of product names),
 * nextbuy.as_of (ISO date), nextbuy.max_length, nextbuy.wide_features (JSON array of the W feature names).
 */
import {
  Field,
  Float32,
  Int32,
  Int8,
  List,
  RecordBatch,
  RecordBatchReader,
  RecordBatchStreamWriter,
  Schema,
  Struct,
  Utf8,
  makeData,
  vectorFromArray,
  type Vector,
} from 'apache-arrow';
import { NextbuyError, ProtocolError } from '../core/errors.js';
import { checkIpcStream } from './ipc-guard.js';

export const SHARD_SCHEMA_VERSION = '2';
export const TOKEN_COLUMNS = ['item', 'category', 'event'] as const;
export type TokenColumn = (typeof TOKEN_COLUMNS)[number];

export interface ShardSchemaOptions {
  tokenColumns: TokenColumn[];
  /** Numeric feature column names in the input (each becomes `num_<name>`). */
  numericColumns: string[];
  /** Product names; when labelled is true, `labels` carries one entry per product in this order. */
  products: string[];
  labelled: boolean;
  asOf: string;
  maxLength: number;
  /** Aggregate feature names (W); every row's `wide` list holds products × W values. @default [] */
  wideFeatures?: string[];
}

const listOf = (t: Int32 | Float32 | Int8) => new List(new Field('item', t, true));

export function shardSchema(o: ShardSchemaOptions): Schema {
  const fields: Field[] = [new Field('customer_id', new Utf8(), false), new Field('history_length', new Int32(), false)];
  for (const c of o.tokenColumns) fields.push(new Field(c, listOf(new Int32()), false));
  fields.push(new Field('dt', listOf(new Float32()), false), new Field('age', listOf(new Float32()), false));
  for (const n of o.numericColumns) fields.push(new Field(`num_${n}`, listOf(new Float32()), false));
  fields.push(new Field('wide', listOf(new Float32()), false));
  if (o.labelled) fields.push(new Field('labels', listOf(new Int8()), false));
  fields.push(new Field('weight', new Float32(), false), new Field('split', new Int8(), false), new Field('snapshot', new Int8(), false));
  const metadata = new Map([
    ['nextbuy.shard_schema', SHARD_SCHEMA_VERSION],
    ['nextbuy.products', JSON.stringify(o.products)],
    ['nextbuy.as_of', o.asOf],
    ['nextbuy.max_length', String(o.maxLength)],
    ['nextbuy.wide_features', JSON.stringify(o.wideFeatures ?? [])],
  ]);
  return new Schema(fields, metadata);
}

/** Dense, left-padded tensors for a batch of customers: what models train and score on. */
export interface SequenceBatch {
  size: number;
  maxLength: number;
  customerIds: string[];
  /** The ids as the shard carries them (UTF-8), on batches read from a shard; engines that need no strings read these. */
  customerIdBytes?: Utf8Bytes;
  historyLength: Int32Array;
  /** Per token column present: [size × maxLength] ids, left-padded with 0. */
  tokens: Partial<Record<TokenColumn, Int32Array>>;
  /** [size × maxLength × featureNames.length]: dt, age, then num_* in schema order; 0 at padding. */
  features: Float32Array;
  featureNames: string[];
  products: string[];
  /** [size × products.length × wideFeatures.length]: the aggregate features per customer and product. */
  wide: Float32Array;
  wideFeatures: string[];
  /** [size × products.length] when the shard is labelled. */
  labels: Int8Array | null;
  weight: Float32Array;
  split: Int8Array;
  /** 0 = as of the set's date; k > 0 = an earlier training snapshot. */
  snapshot: Int8Array;
}

/** Converts one shard record batch into its dense form without a JavaScript object per event. */
export function toSequenceBatch(batch: RecordBatch): SequenceBatch {
  return guarded(batch, readSequenceBatch);
}

/** A shard batch's rows without their sequences: what the count model and the evaluation read. */
export type ShardRows = Pick<SequenceBatch, 'size' | 'customerIds' | 'products' | 'wide' | 'wideFeatures' | 'labels' | 'weight' | 'split' | 'snapshot'>;

/** Reads a shard batch's ids, aggregates, labels, weights, splits and snapshots, leaving its event lists unread. */
export function toShardRows(batch: RecordBatch): ShardRows {
  return guarded(batch, readShardRows);
}

function guarded<T>(batch: RecordBatch, read: (batch: RecordBatch) => T): T {
  try {
    return read(batch);
  } catch (e) {
    // A corrupted batch that decoded (bad metadata JSON, buffers shorter than their counts) is the peer's fault, not ours.
    if (e instanceof NextbuyError) throw e;
    throw new ProtocolError(`shard batch is malformed (${batch.numRows} rows): ${(e as Error).message}`, { cause: e });
  }
}

function columnOf(batch: RecordBatch): (name: string) => Vector {
  return (name) => {
    const v = batch.getChild(name);
    if (!v) throw new ProtocolError(`shard batch has no column "${name}": it was not built by this nextbuy's preprocess`);
    return v;
  };
}

function readShardRows(batch: RecordBatch): ShardRows {
  const schema = batch.schema;
  const version = schema.metadata.get('nextbuy.shard_schema');
  if (version !== SHARD_SCHEMA_VERSION) {
    throw new ProtocolError(
      `shard batch has schema version "${version ?? 'none'}", this nextbuy reads "${SHARD_SCHEMA_VERSION}": rebuild the shards with the same nextbuy version as the workers`,
    );
  }
  const products = JSON.parse(schema.metadata.get('nextbuy.products') ?? '[]') as string[];
  const size = batch.numRows;
  const col = columnOf(batch);
  const wideFeatures = JSON.parse(schema.metadata.get('nextbuy.wide_features') ?? '[]') as string[];
  const wideWidth = products.length * wideFeatures.length;
  const hasLabels = schema.fields.some((f) => f.name === 'labels');
  return {
    size,
    customerIds: readUtf8Column(col('customer_id')),
    products,
    wide: padList(col('wide'), wideWidth, new Float32Array(size * wideWidth), true) as Float32Array,
    wideFeatures,
    labels: hasLabels ? (padList(col('labels'), products.length, new Int8Array(size * products.length), true) as Int8Array) : null,
    weight: flat(col('weight'), Float32Array) as Float32Array,
    split: flat(col('split'), Int8Array) as Int8Array,
    snapshot: flat(col('snapshot'), Int8Array) as Int8Array,
  };
}

function readSequenceBatch(batch: RecordBatch): SequenceBatch {
  const rows = readShardRows(batch);
  const schema = batch.schema;
  const maxLength = Number(schema.metadata.get('nextbuy.max_length'));
  if (!Number.isInteger(maxLength) || maxLength < 1) throw new ProtocolError('shard batch metadata nextbuy.max_length is missing or not a positive integer');
  const size = rows.size;
  const col = columnOf(batch);
  const tokens: Partial<Record<TokenColumn, Int32Array>> = {};
  for (const c of TOKEN_COLUMNS) {
    if (schema.fields.some((f) => f.name === c)) tokens[c] = padList(col(c), maxLength, new Int32Array(size * maxLength)) as Int32Array;
  }
  const featureNames = schema.fields.map((f) => f.name).filter((n) => n === 'dt' || n === 'age' || n.startsWith('num_'));
  const features = new Float32Array(size * maxLength * featureNames.length);
  featureNames.forEach((name, k) => padList(col(name), maxLength, features, false, featureNames.length, k));
  return {
    ...rows,
    maxLength,
    customerIdBytes: readUtf8Bytes(col('customer_id')),
    historyLength: flat(col('history_length'), Int32Array) as Int32Array,
    tokens,
    features,
    featureNames,
  };
}

type TypedArrayCtor = Int32ArrayConstructor | Float32ArrayConstructor | Int8ArrayConstructor;

function flat(v: Vector, Ctor: TypedArrayCtor): Int32Array | Float32Array | Int8Array {
  const out = new Ctor(v.length);
  let at = 0;
  for (const data of v.data) {
    // Arrow JS slices a Data's buffers along with it: values[0] is the chunk's first row whatever data.offset says.
    out.set((data.values as Int32Array).subarray(0, data.length) as never, at);
    at += data.length;
  }
  return out;
}

/**
 * Copies each row's list into `out` viewed as [rows × width × stride], right-aligned (left-padded),
 * at channel `channel` of `stride` (stride 1: a plain [size × width] array); `exact` requires length == width.
 * Plain index loops: a subarray per row would allocate one object per customer.
 */
function padList(
  v: Vector,
  width: number,
  out: Int32Array | Float32Array | Int8Array,
  exact = false,
  stride = 1,
  channel = 0,
): Int32Array | Float32Array | Int8Array {
  let row = 0;
  for (const data of v.data) {
    const offsets = data.valueOffsets as Int32Array;
    const child = data.children[0]!;
    const values = child.values as Int32Array | Float32Array | Int8Array;
    for (let i = 0; i < data.length; i++, row++) {
      const start = offsets[i]!; // offsets are sliced with the Data (see flat) and index the child's values
      const end = offsets[i + 1]!;
      const n = end - start;
      if (exact ? n !== width : n > width) {
        throw new ProtocolError(`shard batch row ${row} has ${n} values in a list where ${exact ? 'exactly' : 'at most'} ${width} are allowed`);
      }
      let at = (row * width + (width - n)) * stride + channel;
      for (let j = start; j < end; j++, at += stride) out[at] = values[j]!;
    }
  }
  return out;
}

/** A Utf8 column as its bytes: row i is values[offsets[i] .. offsets[i + 1]); offsets need not start at 0. */
export interface Utf8Bytes {
  length: number;
  offsets: Int32Array;
  values: Uint8Array;
}

/** A Utf8 column's bytes: views of the Arrow buffers when it is one chunk without nulls (a shard batch's ids), else re-encoded. */
export function readUtf8Bytes(v: Vector): Utf8Bytes {
  const data = v.data.length === 1 ? v.data[0]! : null;
  const offsets = data?.valueOffsets as Int32Array | undefined;
  const values = data?.values as Uint8Array | undefined;
  if (data && offsets && values && data.nullCount === 0) return { length: data.length, offsets: offsets.subarray(0, data.length + 1), values: values.subarray(0, offsets[data.length]) };
  return utf8BytesOf(readUtf8Column(v));
}

/** A batch's customer ids as UTF-8: the shard's own bytes when it came from one, else encoded from the strings. */
export function customerIdBytesOf(batch: SequenceBatch): Utf8Bytes {
  return batch.customerIdBytes ?? utf8BytesOf(batch.customerIds);
}

/** Strings as Utf8Bytes. */
export function utf8BytesOf(strings: readonly string[]): Utf8Bytes {
  const encoded = strings.map((s) => Buffer.from(s, 'utf8'));
  const offsets = new Int32Array(strings.length + 1);
  encoded.forEach((b, i) => (offsets[i + 1] = offsets[i]! + b.length));
  return { length: strings.length, offsets, values: Buffer.concat(encoded) };
}

/** A Utf8 column as strings: ASCII chunks are decoded once and sliced, others row by row. */
export function readUtf8Column(v: Vector): string[] {
  const out = new Array<string>(v.length);
  let row = 0;
  for (const data of v.data) {
    const offsets = data.valueOffsets as Int32Array | undefined;
    const values = data.values as Uint8Array | undefined;
    if (!offsets || !values || data.nullCount > 0) {
      for (let i = 0; i < data.length; i++) out[row + i] = v.get(row + i) as string;
      row += data.length;
      continue;
    }
    const first = offsets[0]!;
    const bytes = values.subarray(first, offsets[data.length]!);
    const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
    if (/[^\x00-\x7f]/.test(text)) {
      const decoder = new TextDecoder();
      for (let i = 0; i < data.length; i++) out[row + i] = decoder.decode(values.subarray(offsets[i]!, offsets[i + 1]!));
    } else {
      for (let i = 0; i < data.length; i++) out[row + i] = text.slice(offsets[i]! - first, offsets[i + 1]! - first);
    }
    row += data.length;
  }
  return out;
}

/** Serialises record batches as one Arrow IPC stream. */
export function encodeBatches(batches: RecordBatch[]): Uint8Array {
  if (batches.length === 0) throw new ProtocolError('encodeBatches needs at least one record batch');
  const writer = new RecordBatchStreamWriter();
  for (const b of batches) writer.write(b);
  writer.finish();
  return writer.toUint8Array(true);
}

/** Parses an Arrow IPC stream; a malformed payload becomes a ProtocolError, never a crash. */
export function decodeBatches(bytes: Uint8Array): RecordBatch[] {
  checkIpcStream(bytes);
  try {
    const reader = RecordBatchReader.from(bytes);
    return [...reader] as RecordBatch[];
  } catch (e) {
    throw new ProtocolError(`malformed Arrow IPC payload (${bytes.byteLength} bytes): ${(e as Error).message}`, { cause: e });
  }
}

/** A shard batch's columns as flat typed arrays; every list column shares `offsets` (one event list per row). */
export interface ShardColumns {
  customerIds: string[];
  historyLength: Int32Array;
  /** [rows + 1] start of each row's events in the flat list arrays. */
  offsets: Int32Array;
  tokens: Partial<Record<TokenColumn, Int32Array>>;
  dt: Float32Array;
  age: Float32Array;
  /** By input column name (the schema's `num_<name>`). */
  numeric: Record<string, Float32Array>;
  /** [rows × products × wide features] (see the schema's nextbuy.wide_features). @default none (no wide features) */
  wide?: Float32Array;
  /** [rows × products] when the schema is labelled. */
  labels: Int8Array | null;
  weight: Float32Array;
  split: Int8Array;
  /** @default all 0 */
  snapshot?: Int8Array;
}

/** Builds one shard record batch from flat typed arrays (no object per event). */
export function buildShardBatch(schema: Schema, c: ShardColumns): RecordBatch {
  const rows = c.customerIds.length;
  const list = (field: Field, values: Int32Array | Float32Array | Int8Array, offsets: Int32Array) => {
    const listType = field.type as List;
    const child = makeData({ type: listType.children[0]!.type, length: values.length, nullCount: 0, data: values });
    return makeData({ type: listType, length: rows, nullCount: 0, valueOffsets: offsets, child });
  };
  const products = JSON.parse(schema.metadata.get('nextbuy.products') ?? '[]') as string[];
  const wideFeatures = JSON.parse(schema.metadata.get('nextbuy.wide_features') ?? '[]') as string[];
  const fixedOffsets = (width: number) => Int32Array.from({ length: rows + 1 }, (_, i) => i * width);
  const children = schema.fields.map((field) => {
    const name = field.name;
    if (name === 'customer_id') return vectorFromArray(c.customerIds, new Utf8()).data[0]!;
    if (name === 'history_length') return makeData({ type: new Int32(), length: rows, nullCount: 0, data: c.historyLength });
    if (name === 'weight') return makeData({ type: new Float32(), length: rows, nullCount: 0, data: c.weight });
    if (name === 'split') return makeData({ type: new Int8(), length: rows, nullCount: 0, data: c.split });
    if (name === 'dt') return list(field, c.dt, c.offsets);
    if (name === 'age') return list(field, c.age, c.offsets);
    if (name === 'labels') {
      if (!c.labels) throw new ProtocolError('buildShardBatch: the schema is labelled but no labels were given');
      return list(field, c.labels, fixedOffsets(products.length));
    }
    if (name === 'wide') return list(field, c.wide ?? new Float32Array(rows * products.length * wideFeatures.length), fixedOffsets(products.length * wideFeatures.length));
    if (name === 'snapshot') return makeData({ type: new Int8(), length: rows, nullCount: 0, data: c.snapshot ?? new Int8Array(rows) });
    if (name.startsWith('num_')) {
      const values = c.numeric[name.slice(4)];
      if (!values) throw new ProtocolError(`buildShardBatch: no values for numeric column "${name.slice(4)}"`);
      return list(field, values, c.offsets);
    }
    const tokens = c.tokens[name as TokenColumn];
    if (!tokens) throw new ProtocolError(`buildShardBatch: no token ids for column "${name}"`);
    return list(field, tokens, c.offsets);
  });
  const data = makeData({ type: new Struct(schema.fields), length: rows, nullCount: 0, children });
  return new RecordBatch(schema, data);
}
