/**
 * Stable customer hashes: whether a customer is held out for validation, whether a negative is kept by
 * downsampling. Both are MurmurHash3 (x86, 32-bit) of the customer id's UTF-8
 * bytes with a fixed seed per use, so they agree across runs, machines and DuckDB versions (DuckDB's own
 * hash() makes no such promise). Reference vectors: murmur3("", 0) = 0, murmur3("hello", 0) = 0x248bfa47.
 *
 * Also here: a small open-addressing table from 64-bit keys (DuckDB hash() values read as two int32 halves)
 * to int32 values, used to map item/category hashes to vocabulary ids without a JavaScript object per event.
 */

const SPLIT_SEED = 0x5eed_0001;
const SAMPLE_SEED_BASE = 0x5eed_0002;
const TWO_32 = 4_294_967_296;

export function murmur3(bytes: Uint8Array, start: number, length: number, seed: number): number {
  let h = seed >>> 0;
  const end = start + (length & ~3);
  for (let i = start; i < end; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  switch (length & 3) {
    case 3:
      k ^= bytes[end + 2]! << 16;
    // falls through
    case 2:
      k ^= bytes[end + 1]! << 8;
    // falls through
    case 1:
      k ^= bytes[end]!;
      k = Math.imul(k, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      k = Math.imul(k, 0x1b873593);
      h ^= k;
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A uniform number in [0, 1) per customer for the train/validation split (independent of the shard hash). */
export function splitUnit(bytes: Uint8Array, start: number, length: number): number {
  return murmur3(bytes, start, length, SPLIT_SEED) / TWO_32;
}

/** A uniform number in [0, 1) per (customer, seed) for negative downsampling. */
export function sampleUnit(bytes: Uint8Array, start: number, length: number, seed: number): number {
  return murmur3(bytes, start, length, (SAMPLE_SEED_BASE ^ seed) >>> 0) / TWO_32;
}

export interface Int64MapData {
  slots: Int32Array;
  missing: number;
}

/**
 * Maps 64-bit keys, given as (low, high) int32 halves, to non-zero int32 values; absent keys read as
 * `missing`. One slot is [low, high, value, unused] in one Int32Array, so a probe touches one cache line.
 */
export class Int64Map {
  private readonly slots: Int32Array;
  private readonly mask: number;
  private readonly shift: number;

  /** `slots`: a table from toData() (a copy crossing to a worker thread). */
  constructor(capacity: number, private readonly missing: number, slots?: Int32Array) {
    let size = 16;
    let bits = 4;
    while (size < (slots ? slots.length / 4 : capacity * 2)) {
      size *= 2;
      bits++;
    }
    this.shift = 32 - bits;
    this.slots = slots ?? new Int32Array(size * 4);
    this.mask = size - 1;
  }

  /** Plain data (structured-clone safe); Int64Map.fromData() makes the same map again. */
  toData(): Int64MapData {
    return { slots: this.slots, missing: this.missing };
  }

  static fromData(d: Int64MapData): Int64Map {
    return new Int64Map(0, d.missing, d.slots);
  }

  set(lo: number, hi: number, value: number): void {
    if (value === 0) throw new RangeError('Int64Map values must be non-zero');
    const slots = this.slots;
    let i = this.slot(lo, hi);
    while (slots[4 * i + 2] !== 0 && !(slots[4 * i] === lo && slots[4 * i + 1] === hi)) i = (i + 1) & this.mask;
    slots[4 * i] = lo;
    slots[4 * i + 1] = hi;
    slots[4 * i + 2] = value;
  }

  get(lo: number, hi: number): number {
    const slots = this.slots;
    let i = this.slot(lo, hi);
    for (;;) {
      const v = slots[4 * i + 2]!;
      if (v === 0) return this.missing;
      if (slots[4 * i] === lo && slots[4 * i + 1] === hi) return v;
      i = (i + 1) & this.mask;
    }
  }

  private slot(lo: number, hi: number): number {
    // The keys are already hashes: mixing the halves is enough to spread them.
    return (Math.imul(lo ^ hi, 0x9e3779b1) >>> this.shift) & this.mask;
  }
}
