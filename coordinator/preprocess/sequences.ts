/**
 * Point-in-time sequences, built in one pass over the valid events sorted by (customer, time).
 *
 * DuckDB sorts (spilling to its temp directory under memory_limit) and streams data chunks; this module
 * reads them as typed arrays and keeps per customer only O(max_length) state per set (a ring of the last
 * max_length feature events, aggregates, label flags), so one customer with 100,000 events costs no more memory
 * than one with 50. Within one customer and timestamp the events are ordered by (type, item, category,
 * numeric values) here, which makes the order stable and puts exact duplicates side by side: they are
 * dropped and reported (an event is a duplicate when customer, time, type, numeric values and the 64-bit
 * DuckDB hashes of item and category all match).
 *
 * The kernel reads one shard's customers (./shard-task.ts gives it each shard's sorted stream; the shards are
 * built in parallel, see ./shard-pool.ts). For each set and customer known before its as-of time (any valid
 * event before it), one row goes to the set's builder: tokens, dt, age, numeric features, labels, weight, split.
 */
import type { Job } from '../../jobs/job.js';
import { AggregateAccumulator, type AggregateLayout } from '../features/index.js';
import { columnReader, type DuckDB, type VarcharColumn } from '../duckdb/index.js';
import { sampleUnit, splitUnit, type Int64Map } from './hash.js';
import type { ShardBuilder } from './shards.js';
import type { SetWindow } from './windows.js';
import { MARKER_EVENT } from './shard-input.js';

/** One set being built: its window and where its rows go. */
export interface SetSink {
  window: SetWindow;
  /**
   * The point-in-time snapshots whose rows the set stacks, latest first (snapshots[0] is `window`): the train set
   * may hold one row per customer and snapshot (training.snapshots); other sets hold one snapshot.
   */
  snapshots: SetWindow[];
  labelled: boolean;
  /** Negative downsampling rate (1 = keep all); the train set only. */
  negativeRate: number;
  /** The validation split applies (the train set only). */
  split: boolean;
  /** The shard's rows of this set. */
  builder: ShardBuilder;
  /** Called when the builder is full: take its batch now (before the next row arrives). */
  onFull: () => void;
  // Results
  customers: number;
  noHistory: number;
  positives: Float64Array;
}

export interface SequenceOptions {
  job: Job;
  /** SQL of one shard's sorted event stream (see shardStreamSql). */
  sql: string;
  customerType: 'BIGINT' | 'VARCHAR';
  numericCount: number;
  sets: SetSink[];
  itemIds: Int64Map | null;
  categoryIds: Int64Map | null;
  /** Token id per event type index. */
  eventIds: Int32Array;
  /** Per product: the (low, high) hash halves of its category, or a null entry for `any`. */
  productCategories: ([number, number] | null)[];
  /** The aggregate features every row carries per product (the shard's `wide` column). */
  aggregates: AggregateLayout;
  /** Called for each dropped duplicate (rare). */
  onDuplicate: (d: DuplicateEvent) => void;
  /** After each chunk: lets the caller write full batches; events handled so far. */
  afterChunk: (eventsDone: number) => Promise<void>;
}

export interface DuplicateEvent {
  customer: string;
  ts: number;
  e: number;
  itemHash: [number, number];
  categoryHash: [number, number];
}

export interface SequenceTotals {
  events: number;
  duplicates: number;
}


/** Per set, per customer state: a ring of the last max_length feature events, aggregates and label flags. */
class SetState {
  readonly ts: Float64Array;
  readonly item: Int32Array;
  readonly category: Int32Array;
  readonly event: Int32Array;
  readonly numeric: Float32Array;
  /** log1p(seconds since the customer's previous event): the dt feature, except for a set's first event. */
  readonly dt: Float32Array;
  readonly labels: Int8Array;
  count = 0;
  /** Where the next event goes: count % maxLength. */
  head = 0;
  readonly fromMs: number;
  readonly asOfMs: number;
  readonly labelToMs: number;

  readonly aggregates: AggregateAccumulator;

  constructor(
    readonly sink: SetSink,
    window: SetWindow,
    /** 0 for the latest snapshot of the set. */
    readonly snapshot: number,
    maxLength: number,
    numericCount: number,
    aggregates: AggregateLayout,
    /** Per product: its aggregate slot (see AggregateAccumulator). */
    slotOf: Int32Array,
    slots: number,
    products: number,
  ) {
    this.fromMs = window.featureFromMs;
    this.asOfMs = window.asOfMs;
    this.labelToMs = window.labelToMs;
    this.aggregates = new AggregateAccumulator(aggregates, slotOf, slots);
    this.ts = new Float64Array(maxLength);
    this.item = new Int32Array(maxLength);
    this.category = new Int32Array(maxLength);
    this.event = new Int32Array(maxLength);
    this.numeric = new Float32Array(maxLength * Math.max(1, numericCount));
    this.dt = new Float32Array(maxLength);
    this.labels = new Int8Array(products);
  }

  reset(): void {
    this.count = 0;
    this.head = 0;
    this.labels.fill(0);
    this.aggregates.reset();
  }
}

/** One result chunk of the stream (see streamSql) as typed arrays. */
export interface ChunkColumns {
  rows: number;
  /** Customer boundary key as int32 halves: the BIGINT customer itself, or hash(customer) for VARCHAR ids. */
  key: Int32Array;
  /** VARCHAR customer ids, or null when the customer is BIGINT (then `key` holds it). */
  ids: VarcharColumn | null;
  ts: Float64Array;
  e: Uint8Array;
  itemHash: Int32Array;
  categoryHash: Int32Array;
  numeric: Float64Array[];
  numericValid: (Uint8Array | null)[];
}

export type KernelOptions = Omit<SequenceOptions, 'sql' | 'afterChunk' | 'customerType'>;

/** The per-customer state machine over the sorted events; no I/O (so it can be measured and tested alone). */
export class SequenceKernel {
  events = 0;
  duplicates = 0;
  private readonly states: SetState[];
  private readonly maxLength: number;
  private readonly numericCount: number;
  private readonly purchase: number;
  private readonly products: number;
  private readonly productLo: Int32Array;
  private readonly productHi: Int32Array;
  private readonly productAny: Uint8Array;
  private readonly seed: number;
  private readonly validationShare: number;
  private readonly hasItem: boolean;
  private readonly hasCategory: boolean;
  private readonly itemIds: Int64Map | null;
  private readonly categoryIds: Int64Map | null;
  private readonly eventIds: Int32Array;
  // The current customer.
  private started = false;
  private keyLo = 0;
  private keyHi = 0;
  private idBytes = new Uint8Array(256);
  private idLength = 0;
  private firstTs = NaN;
  /** The customer's previous (kept) event time: the same for every set, since a set's feature events are contiguous. */
  private prevTs = NaN;
  // The current group of events sharing one timestamp (usually one event).
  private groupTs = NaN;
  private groupSize = 0;
  private gE = new Int32Array(16);
  /** Per event: item hash low, high, category hash low, high. */
  private gHash = new Int32Array(16 * 4);
  private gNum: Float64Array;
  /** sign(x)·log1p(|x|) of gNum, computed once per event for all sets. */
  private gNumT: Float32Array;
  private order = new Int32Array(16);
  /** products × aggregate features: one row's `wide` values. */
  private readonly wideWidth: number;
  /** Per product: its aggregate slot (0 for `any`, else its own). */
  private readonly slotOf: Int32Array;

  constructor(private readonly o: KernelOptions) {
    const job = o.job;
    this.maxLength = job.sequence.maxLength;
    this.numericCount = o.numericCount;
    this.purchase = job.events.types.indexOf(job.events.purchase);
    this.products = o.productCategories.length;
    let slots = 1;
    this.slotOf = Int32Array.from(o.productCategories, (p) => (p === null ? 0 : slots++));
    this.states = o.sets.flatMap((s) =>
      s.snapshots.map((w, k) => new SetState(s, w, k, this.maxLength, o.numericCount, o.aggregates, this.slotOf, slots, this.products)),
    );
    this.wideWidth = this.products * o.aggregates.names.length;
    this.seed = job.model.seed;
    this.validationShare = job.model.validationShare;
    this.hasItem = job.columns.item !== null;
    this.hasCategory = job.columns.category !== null;
    this.itemIds = o.itemIds;
    this.categoryIds = o.categoryIds;
    this.eventIds = o.eventIds;
    this.productLo = new Int32Array(this.products);
    this.productHi = new Int32Array(this.products);
    this.productAny = new Uint8Array(this.products);
    o.productCategories.forEach((p, i) => {
      if (p === null) this.productAny[i] = 1;
      else [this.productLo[i], this.productHi[i]] = p;
    });
    this.gNum = new Float64Array(16 * Math.max(1, o.numericCount));
    this.gNumT = new Float32Array(16 * Math.max(1, o.numericCount));
  }

  consume(c: ChunkColumns): void {
    const { rows, key, ts, e, itemHash, categoryHash, ids, numeric, numericValid } = c;
    const numericCount = this.numericCount;
    for (let i = 0; i < rows; i++) {
      const lo = key[2 * i]!;
      const hk = key[2 * i + 1]!;
      if (lo !== this.keyLo || hk !== this.keyHi || !this.started) {
        if (this.started) this.endCustomer();
        this.started = true;
        this.keyLo = lo;
        this.keyHi = hk;
        if (ids) {
          const n = ids.length(i);
          if (n > this.idBytes.length) this.idBytes = new Uint8Array(2 * n);
          this.idLength = ids.copyTo(i, this.idBytes, 0);
        } else {
          this.idLength = writeInt64Decimal(lo, hk, this.idBytes);
        }
      }
      const t = ts[i]!;
      const ev = e[i]!;
      if (ev === MARKER_EVENT) {
        if (!(this.firstTs <= t)) this.firstTs = t;
        continue;
      }
      this.events++;
      if (t !== this.groupTs) {
        if (this.groupSize > 0) this.flushGroup();
        this.groupTs = t;
      }
      if (this.groupSize === this.gE.length) this.growGroup();
      const g = this.groupSize++;
      this.gE[g] = ev;
      const gHash = this.gHash;
      gHash[4 * g] = itemHash[2 * i]!;
      gHash[4 * g + 1] = itemHash[2 * i + 1]!;
      gHash[4 * g + 2] = categoryHash[2 * i]!;
      gHash[4 * g + 3] = categoryHash[2 * i + 1]!;
      for (let k = 0; k < numericCount; k++) {
        const valid = numericValid[k]!;
        const x = valid === null || (valid[i >> 3]! & (1 << (i & 7))) !== 0 ? numeric[k]![i]! : 0;
        this.gNum[g * numericCount + k] = x;
        this.gNumT[g * numericCount + k] = x === 0 ? 0 : Math.sign(x) * Math.log1p(Math.abs(x));
      }
    }
  }

  /** Ends the last customer. */
  finish(): void {
    if (this.started) this.endCustomer();
    this.started = false;
  }

  private feed(ts: number, e: number, g: number): void {
    if (!(this.firstTs <= ts)) this.firstTs = ts;
    const prevTs = this.prevTs;
    this.prevTs = ts;
    let itemId = -1;
    let categoryId = 0;
    let dt = 0;
    const states = this.states;
    const gHash = this.gHash;
    let categorySlot = 0;
    for (let s = 0; s < states.length; s++) {
      const st = states[s]!;
      if (ts >= st.fromMs && ts < st.asOfMs) {
        if (itemId < 0) {
          itemId = this.itemIds ? this.itemIds.get(gHash[4 * g]!, gHash[4 * g + 1]!) : 0;
          categoryId = this.categoryIds ? this.categoryIds.get(gHash[4 * g + 2]!, gHash[4 * g + 3]!) : 0;
          dt = prevTs === prevTs ? Math.log1p((ts - prevTs) / 1000) : 0;
          const p = this.categoryProduct(g);
          if (p >= 0) categorySlot = this.slotOf[p]!;
        }
        st.aggregates.add(ts, st.asOfMs, e, categorySlot, this.gNum, g * this.numericCount);
        const count = st.count;
        const slot = st.head;
        st.head = slot + 1 === this.maxLength ? 0 : slot + 1;
        st.dt[slot] = dt;
        st.ts[slot] = ts;
        st.item[slot] = itemId;
        st.category[slot] = categoryId;
        st.event[slot] = this.eventIds[e]!;
        const numericCount = this.numericCount;
        for (let k = 0; k < numericCount; k++) st.numeric[slot * numericCount + k] = this.gNumT[g * numericCount + k]!;
        st.count = count + 1;
      } else if (e === this.purchase && ts >= st.asOfMs && ts < st.labelToMs) {
        for (let p = 0; p < this.products; p++) if (this.productAny[p]) st.labels[p] = 1;
        const p = this.categoryProduct(g);
        if (p >= 0) st.labels[p] = 1;
      }
    }
  }

  /** The category product event g is in (product categories are distinct), or -1. */
  private categoryProduct(g: number): number {
    const lo = this.gHash[4 * g + 2]!;
    const hi = this.gHash[4 * g + 3]!;
    for (let p = 0; p < this.products; p++) if (!this.productAny[p] && lo === this.productLo[p] && hi === this.productHi[p]) return p;
    return -1;
  }

  /** Orders events sharing a timestamp by (type, item, category, numbers); 0 means an exact duplicate. */
  private compare(a: number, b: number): number {
    const gE = this.gE;
    const gHash = this.gHash;
    if (gE[a] !== gE[b]) return gE[a]! - gE[b]!;
    for (let k = 0; k < 4; k++) if (gHash[4 * a + k] !== gHash[4 * b + k]) return gHash[4 * a + k]! - gHash[4 * b + k]!;
    const n = this.numericCount;
    for (let k = 0; k < n; k++) {
      const x = this.gNum[a * n + k]!;
      const y = this.gNum[b * n + k]!;
      if (x !== y) return x < y ? -1 : 1;
    }
    return 0;
  }

  private flushGroup(): void {
    const size = this.groupSize;
    this.groupSize = 0;
    if (size === 1) {
      this.feed(this.groupTs, this.gE[0]!, 0);
      return;
    }
    const idx = this.order.subarray(0, size);
    for (let i = 0; i < size; i++) idx[i] = i;
    idx.sort((a, b) => this.compare(a, b));
    this.feed(this.groupTs, this.gE[idx[0]!]!, idx[0]!);
    for (let i = 1; i < size; i++) {
      const g = idx[i]!;
      if (this.compare(idx[i - 1]!, g) !== 0) {
        this.feed(this.groupTs, this.gE[g]!, g);
        continue;
      }
      this.duplicates++;
      this.o.onDuplicate({
        customer: new TextDecoder().decode(this.idBytes.subarray(0, this.idLength)),
        ts: this.groupTs,
        e: this.gE[g]!,
        itemHash: [this.gHash[4 * g]!, this.gHash[4 * g + 1]!],
        categoryHash: [this.gHash[4 * g + 2]!, this.gHash[4 * g + 3]!],
      });
    }
  }

  private endCustomer(): void {
    if (this.groupSize > 0) this.flushGroup();
    const states = this.states;
    for (let s = 0; s < states.length; s++) {
      const st = states[s]!;
      this.emit(st);
      st.reset();
    }
    this.firstTs = NaN;
    this.prevTs = NaN;
    this.groupTs = NaN;
  }

  private emit(st: SetState): void {
    const sink = st.sink;
    if (!(this.firstTs < st.asOfMs)) return; // not a customer yet as of this date
    const idBytes = this.idBytes;
    const idLength = this.idLength;
    const products = this.products;
    let weight = 1;
    if (sink.negativeRate < 1) {
      let positive = false;
      for (let p = 0; p < products; p++) if (st.labels[p]) positive = true;
      if (!positive) {
        if (sampleUnit(idBytes, 0, idLength, this.seed) >= sink.negativeRate) return;
        weight = 1 / sink.negativeRate;
      }
    }
    const split = sink.split && splitUnit(idBytes, 0, idLength) < this.validationShare ? 1 : 0;
    const b = sink.builder;
    const maxLength = this.maxLength;
    const count = st.count;
    const n = count < maxLength ? count : maxLength;
    const base = b.reserve(n, idLength);
    const bytes = b.customerBytes;
    const at0 = b.customerOffsets[b.rows]!;
    for (let k = 0; k < idLength; k++) bytes[at0 + k] = idBytes[k]!;
    const asOfMs = st.asOfMs;
    let slot = count > maxLength ? st.head : 0;
    const tokens = b.tokens;
    const itemTokens = this.hasItem ? tokens[0]! : null;
    const categoryTokens = this.hasCategory ? tokens[this.hasItem ? 1 : 0]! : null;
    const eventTokens = tokens[tokens.length - 1]!;
    const dt = b.dt;
    const age = b.age;
    const numericCount = this.numericCount;
    for (let j = 0; j < n; j++) {
      const ts = st.ts[slot]!;
      const at = base + j;
      if (itemTokens) itemTokens[at] = st.item[slot]!;
      if (categoryTokens) categoryTokens[at] = st.category[slot]!;
      eventTokens[at] = st.event[slot]!;
      dt[at] = st.dt[slot]!;
      age[at] = Math.log1p((asOfMs - ts) / 1000);
      for (let k = 0; k < numericCount; k++) b.numeric[k]![at] = st.numeric[slot * numericCount + k]!;
      if (++slot === maxLength) slot = 0;
    }
    if (sink.labelled) {
      const labels = b.labels;
      const at = b.rows * products;
      for (let p = 0; p < products; p++) labels[at + p] = st.labels[p]!;
    }
    st.aggregates.writeTransformed(asOfMs, this.firstTs, b.wide, b.rows * this.wideWidth);
    b.snapshot[b.rows] = st.snapshot;
    // The set's first feature event has no predecessor in the set (unless the ring cut it off).
    if (n > 0 && count <= maxLength) dt[base] = 0;
    b.commit(idLength, n, count, weight, split);
    for (let p = 0; p < products; p++) sink.positives[p]! += st.labels[p]!;
    sink.customers++;
    if (count === 0) sink.noHistory++;
    if (b.full) sink.onFull();
  }

  private growGroup(): void {
    const size = this.gE.length * 2;
    const grow = <T extends Int32Array | Float64Array | Float32Array>(a: T, n: number): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a);
      return b;
    };
    const width = Math.max(1, this.numericCount);
    this.gE = grow(this.gE, size);
    this.gHash = grow(this.gHash, size * 4);
    this.gNum = grow(this.gNum, size * width);
    this.gNumT = grow(this.gNumT, size * width);
    this.order = new Int32Array(size);
  }
}

export async function buildSequences(db: DuckDB, o: SequenceOptions): Promise<SequenceTotals> {
  const kernel = new SequenceKernel(o);
  const keyColumn = o.customerType === 'BIGINT' ? 0 : 5;
  // Its own connection: a streaming result lives only until its connection runs another statement.
  const connection = await db.connect();
  try {
    for await (const chunk of db.stream(o.sql, connection)) {
      const r = columnReader(chunk);
      const numeric: Float64Array[] = [];
      const numericValid: (Uint8Array | null)[] = [];
      for (let k = 0; k < o.numericCount; k++) {
        numeric.push(r.float64(6 + k));
        numericValid.push(r.validity(6 + k));
      }
      kernel.consume({
        rows: r.rows,
        key: r.int64Halves(keyColumn),
        ids: o.customerType === 'VARCHAR' ? r.varchar(0) : null,
        ts: r.float64(1),
        e: r.uint8(2),
        itemHash: r.int64Halves(3),
        categoryHash: r.int64Halves(4),
        numeric,
        numericValid,
      });
      await o.afterChunk(kernel.events);
    }
  } finally {
    connection.closeSync();
  }
  kernel.finish();
  await o.afterChunk(kernel.events);
  return { events: kernel.events, duplicates: kernel.duplicates };
}

/** Writes a signed 64-bit integer given as (low, high) int32 halves in decimal ASCII; returns the length. */
export function writeInt64Decimal(lo: number, hi: number, out: Uint8Array): number {
  let text: string | null = null;
  let v = hi * 4_294_967_296 + (lo >>> 0);
  if (!Number.isSafeInteger(v)) text = ((BigInt(hi) << 32n) | BigInt(lo >>> 0)).toString();
  if (text !== null) {
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return text.length;
  }
  let n = 0;
  if (v < 0) {
    out[n++] = 45; // '-'
    v = -v;
  }
  const start = n;
  do {
    out[n++] = 48 + (v % 10);
    v = Math.floor(v / 10);
  } while (v > 0);
  // digits were written least significant first
  for (let a = start, b = n - 1; a < b; a++, b--) {
    const x = out[a]!;
    out[a] = out[b]!;
    out[b] = x;
  }
  return n;
}
