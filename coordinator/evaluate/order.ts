/**
 * Scores in descending order, grouped into ties. Every metric here is computed over tie groups, so the
 * order inside a group never changes a result.
 */

export interface TieGroups {
  /** Row indices, highest score first. */
  order: Uint32Array;
  /** Group g holds order[start[g]] … order[start[g + 1] − 1]; start has groups + 1 entries. */
  start: Uint32Array;
  groups: number;
}

/**
 * Sorting 1.5 M indices with a comparator takes ~0.6 s; packing (sortable score bits, row index) into one
 * 64-bit integer and using the typed array's native numeric sort takes ~0.13 s and is just as exact, because
 * every score is a float32.
 */
export function orderDescending(scores: Float32Array): Uint32Array {
  if (!isLittleEndian()) throw new RangeError('orderDescending assumes a little-endian machine');
  const n = scores.length;
  const packed = new BigUint64Array(n);
  const halves = new Uint32Array(packed.buffer); // little-endian: [2i] = low half (index), [2i + 1] = high half (key)
  const bits = new Uint32Array(scores.buffer, scores.byteOffset, n);
  for (let i = 0; i < n; i++) {
    const b = bits[i]!;
    // IEEE-754 → unsigned order: flip all bits of negatives, only the sign bit of positives.
    halves[2 * i] = i;
    halves[2 * i + 1] = b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
  }
  packed.sort();
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = halves[2 * (n - 1 - i)]!;
  return order;
}

export function tieGroups(scores: Float32Array): TieGroups {
  const order = orderDescending(scores);
  const starts: number[] = [];
  let previous = Number.NaN;
  for (let i = 0; i < order.length; i++) {
    const s = scores[order[i]!]!;
    if (s !== previous) starts.push(i);
    previous = s;
  }
  starts.push(order.length);
  return { order, start: Uint32Array.from(starts), groups: starts.length - 1 };
}

let littleEndian: boolean | undefined;
function isLittleEndian(): boolean {
  littleEndian ??= new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  return littleEndian;
}
