/**
 * Point-in-time sequences, built in one pass over the valid events sorted by (customer, time).
 *
 * DuckDB sorts (spilling to its temp directory under memory_limit) and streams data chunks; this module
 * reads them as typed arrays and keeps per customer only O(max_length) state per set (a ring of the last
 * max_length feature events, counts, label flags), so one customer with 100,000 events costs no more memory
 * than one with 50. Within one customer and timestamp the events are ordered by (type, item, category,
 * numeric values) here, which makes the order stable and puts exact duplicates side by side: they are
 * dropped and reported (an event is a duplicate when customer, time, type, numeric values and the 64-bit
 * DuckDB hashes of item and category all match).
 *
 * For each set and customer known before its as-of time (any valid event before it), one row goes to the
 * customer's shard builder: tokens, dt, age, numeric features, labels, weight, split.
 */
import type { Job } from '../../jobs/job.js';
import { columnReader, isValid, type DuckDB } from '../duckdb/index.js';
import type { CountsWriter } from './counts.js';
import { sampleUnit, shardOfBytes, splitUnit, type Int64Map } from './hash.js';
import type { ShardBuilder } from './shards.js';
import type { SetWindow } from './windows.js';
import { UNKNOWN_ID } from './vocab.js';

/** One set being built: its window and where its rows go. */
export interface SetSink {
  window: SetWindow;
  labelled: boolean;
  /** Negative downsampling rate (1 = keep all); the train set only. */
  negativeRate: number;
  /** The validation split applies (the train set only). */
  split: boolean;
  builders: ShardBuilder[];
  counts: CountsWriter;
  /** Called when a shard's builder is full: take its batch now (before the next row arrives). */
  onFull: (shard: number) => void;
  // Results
  customers: number;
  noHistory: number;
  positives: Float64Array;
}

export interface SequenceOptions {
  job: Job;
  /** SQL of the sorted event stream (see streamSql). */
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

export const MARKER_EVENT = 255;

/**
 * The sorted stream: valid events in [fromMs, toMs), plus (when some customers' only events are older) one
 * marker row per customer holding its first event time, so customers without recent events are still listed.
 * Columns: customer, ts (DOUBLE ms), e, hash(item), hash(cat), key (hash of a VARCHAR customer), n0 ….
 */
export function streamSql(events: string, customerType: 'BIGINT' | 'VARCHAR', numericCount: number, fromMs: number, toMs: number, withMarkers: boolean): string {
  const key = customerType === 'VARCHAR' ? 'hash(customer)' : '0::UBIGINT';
  const nums = Array.from({ length: numericCount }, (_, i) => `, n${i}`).join('');
  const nulls = Array.from({ length: numericCount }, () => `, NULL::DOUBLE`).join('');
  const recent = `SELECT customer, ts::DOUBLE AS ts, e, hash(item) AS hi, hash(cat) AS hc, ${key} AS k${nums} FROM ${events}
    WHERE reason = 0 AND ts >= ${fromMs} AND ts < ${toMs}`;
  const markers = `SELECT customer, min(ts)::DOUBLE AS ts, ${MARKER_EVENT}::UTINYINT AS e, 0::UBIGINT AS hi, 0::UBIGINT AS hc, ${key} AS k${nulls}
    FROM ${events} WHERE reason = 0 AND ts < ${fromMs} GROUP BY customer`;
  // Two sort keys only: ties within a customer and millisecond are ordered in JavaScript, far cheaper than more keys.
  return `${withMarkers ? `${recent} UNION ALL ${markers}` : recent} ORDER BY customer, ts`;
}

/** Per set, per customer state. */
class SetState {
  readonly ts: Float64Array;
  readonly item: Int32Array;
  readonly category: Int32Array;
  readonly event: Int32Array;
  readonly numeric: Float32Array;
  readonly typeCounts: Int32Array;
  readonly labels: Int8Array;
  count = 0;
  /** Time of the newest event pushed out of the ring (for the first kept event's dt), NaN when none. */
  beforeTs = NaN;
  lastTs = NaN;

  constructor(readonly sink: SetSink, readonly maxLength: number, numericCount: number, types: number, products: number) {
    this.ts = new Float64Array(maxLength);
    this.item = new Int32Array(maxLength);
    this.category = new Int32Array(maxLength);
    this.event = new Int32Array(maxLength);
    this.numeric = new Float32Array(maxLength * Math.max(1, numericCount));
    this.typeCounts = new Int32Array(types);
    this.labels = new Int8Array(products);
  }

  reset(): void {
    this.count = 0;
    this.beforeTs = NaN;
    this.lastTs = NaN;
    this.typeCounts.fill(0);
    this.labels.fill(0);
  }
}

export async function buildSequences(db: DuckDB, o: SequenceOptions): Promise<SequenceTotals> {
  const { job } = o;
  const maxLength = job.sequence.maxLength;
  const numericCount = o.numericCount;
  const types = job.events.types.length;
  const purchase = job.events.types.indexOf(job.events.purchase);
  const products = o.productCategories.length;
  const states = o.sets.map((s) => new SetState(s, maxLength, numericCount, types, products));
  const shardCount = job.shards.count;
  const seed = job.model.seed;
  const validationShare = job.model.validationShare;
  const hasItem = job.columns.item !== null;
  const hasCategory = job.columns.category !== null;
  const productLo = new Int32Array(products);
  const productHi = new Int32Array(products);
  const productAny = new Uint8Array(products);
  o.productCategories.forEach((p, i) => {
    if (p === null) productAny[i] = 1;
    else [productLo[i], productHi[i]] = p;
  });

  // The current customer.
  let started = false;
  let keyLo = 0;
  let keyHi = 0;
  let idBytes = new Uint8Array(256);
  let idLength = 0;
  let firstTs = NaN;
  // The current group of events sharing one timestamp (usually one event).
  let groupTs = NaN;
  let groupSize = 0;
  let gE = new Int32Array(16);
  let gHash = new Int32Array(16 * 4); // item lo, item hi, category lo, category hi
  let gNum = new Float64Array(16 * Math.max(1, numericCount));
  let order = new Int32Array(16);
  let events = 0;
  let duplicates = 0;

  const feed = (ts: number, e: number, g: number): void => {
    if (!(firstTs <= ts)) firstTs = ts;
    let itemId = -1;
    let categoryId = -1;
    for (let s = 0; s < states.length; s++) {
      const st = states[s]!;
      const w = st.sink.window;
      if (ts >= w.featureFromMs && ts < w.asOfMs) {
        if (itemId < 0) {
          itemId = hasItem ? o.itemIds!.get(gHash[4 * g]!, gHash[4 * g + 1]!) : 0;
          categoryId = hasCategory ? o.categoryIds!.get(gHash[4 * g + 2]!, gHash[4 * g + 3]!) : 0;
        }
        const slot = st.count % maxLength;
        if (st.count >= maxLength) st.beforeTs = st.ts[slot]!;
        st.ts[slot] = ts;
        st.item[slot] = itemId;
        st.category[slot] = categoryId;
        st.event[slot] = o.eventIds[e]!;
        for (let k = 0; k < numericCount; k++) {
          const x = gNum[g * numericCount + k]!;
          st.numeric[slot * numericCount + k] = Math.sign(x) * Math.log1p(Math.abs(x));
        }
        st.count++;
        st.typeCounts[e]!++;
        st.lastTs = ts;
      } else if (e === purchase && ts >= w.asOfMs && ts < w.labelToMs) {
        for (let p = 0; p < products; p++) {
          if (productAny[p] || (gHash[4 * g + 2] === productLo[p] && gHash[4 * g + 3] === productHi[p])) st.labels[p] = 1;
        }
      }
    }
  };

  const compare = (a: number, b: number): number => {
    if (gE[a] !== gE[b]) return gE[a]! - gE[b]!;
    for (let k = 0; k < 4; k++) if (gHash[4 * a + k] !== gHash[4 * b + k]) return gHash[4 * a + k]! - gHash[4 * b + k]!;
    for (let k = 0; k < numericCount; k++) {
      const x = gNum[a * numericCount + k]!;
      const y = gNum[b * numericCount + k]!;
      if (x !== y) return x < y ? -1 : 1;
    }
    return 0;
  };

  const flushGroup = (): void => {
    if (groupSize === 0) return;
    if (groupSize === 1) {
      feed(groupTs, gE[0]!, 0);
    } else {
      const idx = order.subarray(0, groupSize);
      for (let i = 0; i < groupSize; i++) idx[i] = i;
      idx.sort(compare);
      feed(groupTs, gE[idx[0]!]!, idx[0]!);
      for (let i = 1; i < groupSize; i++) {
        if (compare(idx[i - 1]!, idx[i]!) === 0) {
          duplicates++;
          const g = idx[i]!;
          o.onDuplicate({
            customer: new TextDecoder().decode(idBytes.subarray(0, idLength)),
            ts: groupTs,
            e: gE[g]!,
            itemHash: [gHash[4 * g]!, gHash[4 * g + 1]!],
            categoryHash: [gHash[4 * g + 2]!, gHash[4 * g + 3]!],
          });
        } else {
          feed(groupTs, gE[idx[i]!]!, idx[i]!);
        }
      }
    }
    groupSize = 0;
  };

  const finishCustomer = (): void => {
    flushGroup();
    for (let s = 0; s < states.length; s++) {
      const st = states[s]!;
      emit(st);
      st.reset();
    }
    firstTs = NaN;
    groupTs = NaN;
  };

  const emit = (st: SetState): void => {
    const sink = st.sink;
    const w = sink.window;
    if (!(firstTs < w.asOfMs)) return; // not a customer yet as of this date
    let weight = 1;
    if (sink.negativeRate < 1) {
      let positive = false;
      for (let p = 0; p < products; p++) if (st.labels[p]) positive = true;
      if (!positive) {
        if (sampleUnit(idBytes, 0, idLength, seed) >= sink.negativeRate) return;
        weight = 1 / sink.negativeRate;
      }
    }
    const split = sink.split && splitUnit(idBytes, 0, idLength) < validationShare ? 1 : 0;
    const shard = shardOfBytes(idBytes, 0, idLength, shardCount);
    const b = sink.builders[shard]!;
    const n = Math.min(st.count, maxLength);
    const base = b.reserve(n, idLength);
    b.customerBytes.set(idBytes.subarray(0, idLength), b.customerOffsets[b.rows]!);
    const oldest = st.count > maxLength ? st.count % maxLength : 0;
    let prev = st.beforeTs;
    const tokens = b.tokens;
    const tokenCount = tokens.length;
    for (let j = 0; j < n; j++) {
      const slot = (oldest + j) % maxLength;
      const ts = st.ts[slot]!;
      const at = base + j;
      // tokens are in TOKEN_COLUMNS order: item?, category?, event
      let t = 0;
      if (hasItem) tokens[t++]![at] = st.item[slot]!;
      if (hasCategory) tokens[t++]![at] = st.category[slot]!;
      if (t < tokenCount) tokens[t]![at] = st.event[slot]!;
      b.dt[at] = prev === prev ? Math.log1p(Math.max(0, ts - prev) / 1000) : 0;
      b.age[at] = Math.log1p((w.asOfMs - ts) / 1000);
      for (let k = 0; k < numericCount; k++) b.numeric[k]![at] = st.numeric[slot * numericCount + k]!;
      prev = ts;
    }
    if (sink.labelled) b.labels.set(st.labels, b.rows * products);
    b.commit(idLength, n, st.count, weight, split);
    for (let p = 0; p < products; p++) sink.positives[p]! += st.labels[p]!;
    sink.customers++;
    if (st.count === 0) sink.noHistory++;
    sink.counts.add(keyLo, keyHi, idBytes, 0, idLength, st.typeCounts, st.lastTs);
    if (b.full) sink.onFull(shard);
  };

  const growGroup = (): void => {
    const size = gE.length * 2;
    const e = new Int32Array(size);
    e.set(gE);
    gE = e;
    const h = new Int32Array(size * 4);
    h.set(gHash);
    gHash = h;
    const nums = new Float64Array(size * Math.max(1, numericCount));
    nums.set(gNum);
    gNum = nums;
    order = new Int32Array(size);
  };

  const keyColumn = o.customerType === 'BIGINT' ? 0 : 5;
  // Its own connection: the caller appends counts and duplicate keys on the main one while this streams.
  const connection = await db.connect();
  try {
    for await (const chunk of db.stream(o.sql, connection)) {
      const r = columnReader(chunk);
      const rows = r.rows;
      const key = r.int64Halves(keyColumn);
      const ts = r.float64(1);
      const e = r.uint8(2);
      const hi = r.int64Halves(3);
      const hc = r.int64Halves(4);
      const ids = o.customerType === 'VARCHAR' ? r.varchar(0) : null;
      const nums: Float64Array[] = [];
      const numValid: (Uint8Array | null)[] = [];
      for (let k = 0; k < numericCount; k++) {
        nums.push(r.float64(6 + k));
        numValid.push(r.validity(6 + k));
      }
      for (let i = 0; i < rows; i++) {
        const lo = key[2 * i]!;
        const hk = key[2 * i + 1]!;
        if (!started || lo !== keyLo || hk !== keyHi) {
          if (started) finishCustomer();
          started = true;
          keyLo = lo;
          keyHi = hk;
          if (ids) {
            const n = ids.length(i);
            if (n > idBytes.length) idBytes = new Uint8Array(2 * n);
            idLength = ids.copyTo(i, idBytes, 0);
          } else {
            idLength = writeInt64Decimal(lo, hk, idBytes);
          }
        }
        const t = ts[i]!;
        const ev = e[i]!;
        if (ev === MARKER_EVENT) {
          if (!(firstTs <= t)) firstTs = t;
          continue;
        }
        events++;
        if (t !== groupTs) {
          flushGroup();
          groupTs = t;
        }
        if (groupSize === gE.length) growGroup();
        const g = groupSize++;
        gE[g] = ev;
        gHash[4 * g] = hi[2 * i]!;
        gHash[4 * g + 1] = hi[2 * i + 1]!;
        gHash[4 * g + 2] = hc[2 * i]!;
        gHash[4 * g + 3] = hc[2 * i + 1]!;
        for (let k = 0; k < numericCount; k++) gNum[g * numericCount + k] = isValid(numValid[k]!, i) ? nums[k]![i]! : 0;
      }
      await o.afterChunk(events);
    }
  } finally {
    connection.closeSync();
  }
  if (started) finishCustomer();
  await o.afterChunk(events);
  return { events, duplicates };
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
