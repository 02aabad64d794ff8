/**
 * Shard files: rows are appended into typed arrays (ShardBuilder), wrapped as Arrow record batches with
 * makeData when a batch is full (no per-row JavaScript object), and written as one Arrow IPC stream per
 * shard (ShardFileWriter), batch by batch with the file write awaited, so memory stays at about one batch.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import {
  Field,
  List,
  RecordBatch,
  RecordBatchReader,
  RecordBatchStreamWriter,
  Struct,
  makeData,
  type Data,
  type DataType,
  type Schema,
} from 'apache-arrow';
import type { TokenColumn } from '../../proto/shard-batch.js';
import { InputError } from '../../core/errors.js';
import { currentFileModes } from '../../core/file-modes.js';

export interface ShardLayout {
  tokenColumns: TokenColumn[];
  numericCount: number;
  productCount: number;
  /** Aggregate features per product (each row's `wide` list holds productCount × this). */
  wideFeatures: number;
  labelled: boolean;
  batchRows: number;
}

/** Accumulates up to layout.batchRows rows; callers fill the value arrays between reserve() and commit(). */
export class ShardBuilder {
  rows = 0;
  values = 0;
  customerOffsets!: Int32Array;
  customerBytes!: Uint8Array;
  historyLength!: Int32Array;
  listOffsets!: Int32Array;
  /** One per layout.tokenColumns entry. */
  tokens!: Int32Array[];
  dt!: Float32Array;
  age!: Float32Array;
  numeric!: Float32Array[];
  /** [row × productCount]. */
  labels!: Int8Array;
  /** [row × productCount × wideFeatures]. */
  wide!: Float32Array;
  weight!: Float32Array;
  split!: Int8Array;
  snapshot!: Int8Array;
  private readonly labelOffsets: Int32Array;
  private readonly wideOffsets: Int32Array;

  constructor(
    private readonly schema: Schema,
    private readonly layout: ShardLayout,
    private valueCapacity = layout.batchRows * 8,
    private byteCapacity = layout.batchRows * 12,
  ) {
    this.labelOffsets = Int32Array.from({ length: layout.batchRows + 1 }, (_, i) => i * layout.productCount);
    this.wideOffsets = Int32Array.from({ length: layout.batchRows + 1 }, (_, i) => i * layout.productCount * layout.wideFeatures);
    this.allocate();
  }

  get full(): boolean {
    return this.rows >= this.layout.batchRows;
  }

  /** Room for one more row with `n` list values and an id of `idBytes` bytes; returns its first value index. */
  reserve(n: number, idBytes: number): number {
    if (this.values + n > this.valueCapacity) this.growValues(this.values + n);
    const at = this.customerOffsets[this.rows]!;
    if (at + idBytes > this.byteCapacity) {
      this.byteCapacity = Math.max(2 * this.byteCapacity, at + idBytes);
      this.customerBytes = grow(this.customerBytes, this.byteCapacity);
    }
    return this.values;
  }

  /** Ends the row: its id bytes and labels must already be written at the reserved places. */
  commit(idBytes: number, n: number, historyLength: number, weight: number, split: number): void {
    const r = this.rows;
    this.customerOffsets[r + 1] = this.customerOffsets[r]! + idBytes;
    this.historyLength[r] = historyLength;
    this.values += n;
    this.listOffsets[r + 1] = this.values;
    this.weight[r] = weight;
    this.split[r] = split;
    this.rows = r + 1;
  }

  /**
   * The rows so far as a record batch; the builder starts over on other arrays (the batch keeps these).
   * Call `release()` once the batch is written: its arrays then serve the batch after next, instead of new ones.
   */
  take(): { batch: RecordBatch; release: () => void } {
    const n = this.rows;
    const v = this.values;
    const children: Data[] = [];
    const byName = new Map<string, Data>();
    const list = (type: DataType, values: Int32Array | Float32Array | Int8Array, offsets: Int32Array, count: number) =>
      makeData({
        type: type as List,
        length: n,
        nullCount: 0,
        valueOffsets: offsets.subarray(0, n + 1),
        child: makeData({ type: (type as List).children[0]!.type, length: count, nullCount: 0, data: values.subarray(0, count) } as never),
      });
    const types = new Map(this.schema.fields.map((f) => [f.name, f.type as DataType]));
    byName.set('customer_id', makeData({ type: types.get('customer_id') as never, length: n, nullCount: 0, valueOffsets: this.customerOffsets.subarray(0, n + 1), data: this.customerBytes.subarray(0, this.customerOffsets[n]) } as never));
    byName.set('history_length', makeData({ type: types.get('history_length') as never, length: n, nullCount: 0, data: this.historyLength.subarray(0, n) } as never));
    this.layout.tokenColumns.forEach((c, i) => byName.set(c, list(types.get(c)!, this.tokens[i]!, this.listOffsets, v)));
    byName.set('dt', list(types.get('dt')!, this.dt, this.listOffsets, v));
    byName.set('age', list(types.get('age')!, this.age, this.listOffsets, v));
    const numericNames = this.schema.fields.map((f) => f.name).filter((x) => x.startsWith('num_'));
    numericNames.forEach((name, i) => byName.set(name, list(types.get(name)!, this.numeric[i]!, this.listOffsets, v)));
    byName.set('wide', list(types.get('wide')!, this.wide, this.wideOffsets, n * this.layout.productCount * this.layout.wideFeatures));
    if (this.layout.labelled) byName.set('labels', list(types.get('labels')!, this.labels, this.labelOffsets, n * this.layout.productCount));
    byName.set('snapshot', makeData({ type: types.get('snapshot') as never, length: n, nullCount: 0, data: this.snapshot.subarray(0, n) } as never));
    byName.set('weight', makeData({ type: types.get('weight') as never, length: n, nullCount: 0, data: this.weight.subarray(0, n) } as never));
    byName.set('split', makeData({ type: types.get('split') as never, length: n, nullCount: 0, data: this.split.subarray(0, n) } as never));
    for (const f of this.schema.fields) children.push(byName.get(f.name)!);
    const batch = new RecordBatch(this.schema, makeData({ type: new Struct(this.schema.fields as Field[]), length: n, nullCount: 0, children }));
    // Size the next batch's arrays from this one's, so a shard of short sequences never allocates for long ones.
    this.valueCapacity = Math.max(this.layout.batchRows, Math.ceil(v * 1.25));
    this.byteCapacity = Math.max(this.layout.batchRows, Math.ceil(this.customerOffsets[n]! * 1.25));
    const taken = this.buffers();
    const spare = this.spare;
    this.spare = null;
    if (spare) this.use(spare);
    else this.allocate();
    return { batch, release: () => (this.spare = taken) };
  }

  private spare: Buffers | null = null;

  private buffers(): Buffers {
    const { customerOffsets, customerBytes, historyLength, listOffsets, tokens, dt, age, numeric, labels, wide, weight, split, snapshot } = this;
    return { customerOffsets, customerBytes, historyLength, listOffsets, tokens, dt, age, numeric, labels, wide, weight, split, snapshot };
  }

  private use(b: Buffers): void {
    Object.assign(this, b);
    this.rows = 0;
    this.values = 0;
    this.customerOffsets[0] = 0;
    this.listOffsets[0] = 0;
    this.valueCapacity = b.dt.length;
    this.byteCapacity = b.customerBytes.length;
  }

  private allocate(): void {
    const rows = this.layout.batchRows;
    this.rows = 0;
    this.values = 0;
    this.customerOffsets = new Int32Array(rows + 1);
    this.customerBytes = new Uint8Array(this.byteCapacity);
    this.historyLength = new Int32Array(rows);
    this.listOffsets = new Int32Array(rows + 1);
    this.tokens = this.layout.tokenColumns.map(() => new Int32Array(this.valueCapacity));
    this.dt = new Float32Array(this.valueCapacity);
    this.age = new Float32Array(this.valueCapacity);
    this.numeric = Array.from({ length: this.layout.numericCount }, () => new Float32Array(this.valueCapacity));
    this.labels = new Int8Array(rows * this.layout.productCount);
    this.wide = new Float32Array(rows * this.layout.productCount * this.layout.wideFeatures);
    this.weight = new Float32Array(rows);
    this.split = new Int8Array(rows);
    this.snapshot = new Int8Array(rows);
  }

  private growValues(needed: number): void {
    this.valueCapacity = Math.max(2 * this.valueCapacity, needed);
    this.tokens = this.tokens.map((a) => grow(a, this.valueCapacity));
    this.dt = grow(this.dt, this.valueCapacity);
    this.age = grow(this.age, this.valueCapacity);
    this.numeric = this.numeric.map((a) => grow(a, this.valueCapacity));
  }
}

type Buffers = Pick<ShardBuilder, 'customerOffsets' | 'customerBytes' | 'historyLength' | 'listOffsets' | 'tokens' | 'dt' | 'age' | 'numeric' | 'labels' | 'wide' | 'weight' | 'split' | 'snapshot'>;

function grow<T extends Int32Array | Float32Array | Uint8Array>(a: T, size: number): T {
  const b = new (a.constructor as new (n: number) => T)(size);
  b.set(a);
  return b;
}

/** RecordBatchStreamWriter that hands its output bytes over synchronously instead of queueing them. */
class CapturingStreamWriter extends RecordBatchStreamWriter {
  private pending: Uint8Array[] = [];
  protected override _write(chunk: unknown): this {
    if (this._started && ArrayBuffer.isView(chunk) && chunk.byteLength > 0) {
      this.pending.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      this._position += chunk.byteLength;
    }
    return this;
  }
  take(): Uint8Array[] {
    const p = this.pending;
    this.pending = [];
    return p;
  }
}

/** One shard's Arrow IPC stream file. */
export class ShardFileWriter {
  rows = 0;
  private readonly writer = new CapturingStreamWriter();

  private constructor(readonly file: string, private readonly handle: FileHandle) {}

  static async create(file: string, schema: Schema): Promise<ShardFileWriter> {
    const mode = currentFileModes().file;
    const handle = await open(file, 'w', mode);
    await handle.chmod(mode); // also when the file was there already
    const w = new ShardFileWriter(file, handle);
    w.writer.reset(undefined, schema);
    await w.flush();
    return w;
  }

  async write(batch: RecordBatch): Promise<void> {
    this.writer.write(batch);
    this.rows += batch.numRows;
    await this.flush();
  }

  /** Ends the stream and closes the file; returns the file's size in bytes. */
  async close(): Promise<number> {
    try {
      this.writer.finish();
      await this.flush();
    } finally {
      await this.handle.close();
    }
    return (await stat(this.file)).size;
  }

  /** Closes the file without ending the stream (after an error elsewhere). */
  async abort(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }

  private async flush(): Promise<void> {
    const chunks = this.writer.take();
    if (chunks.length > 0) await this.handle.writev(chunks);
  }
}

/** Streams a shard file's record batches (none for an empty shard). */
export async function* readShard(file: string): AsyncGenerator<RecordBatch> {
  // An absent file would read as an empty stream: say so instead.
  await stat(file).catch((e: NodeJS.ErrnoException) => {
    throw e.code === 'ENOENT' ? new InputError(`shard file ${file} does not exist: rerun 'nextbuy preprocess'`, { cause: e }) : e;
  });
  const stream = createReadStream(file);
  try {
    const reader = await RecordBatchReader.from(stream);
    // apache-arrow hands out one empty placeholder batch for a stream that has a schema and no batches.
    for await (const batch of reader) if (batch.numRows > 0) yield batch as RecordBatch;
  } finally {
    stream.destroy();
  }
}
