import { describe, expect, test } from 'vitest';
import { ProtocolError } from '../core/errors.js';
import { buildShardBatch, decodeBatches, encodeBatches, shardSchema, toSequenceBatch } from '../proto/shard-batch.js';

const schema = shardSchema({ tokenColumns: ['item', 'event'], numericColumns: ['price'], products: ['any', 'shoes'], labelled: true, asOf: '2017-12-02', maxLength: 3 });

function sample() {
  return buildShardBatch(schema, {
    customerIds: ['a', 'b', 'c'],
    historyLength: Int32Array.from([2, 0, 5]),
    offsets: Int32Array.from([0, 2, 2, 5]),
    tokens: { item: Int32Array.from([11, 12, 21, 22, 23]), event: Int32Array.from([2, 3, 2, 2, 4]) },
    dt: Float32Array.from([0, 1, 0, 2, 3]),
    age: Float32Array.from([9, 8, 7, 6, 5]),
    numeric: { price: Float32Array.from([1.5, 2.5, 3.5, 4.5, 5.5]) },
    labels: Int8Array.from([1, 0, 0, 0, 1, 1]),
    weight: Float32Array.from([1, 4, 1]),
    split: Int8Array.from([0, 1, 0]),
  });
}

describe('shard batch', () => {
  test('survives IPC and becomes left-padded dense tensors', () => {
    const [batch] = decodeBatches(encodeBatches([sample()]));
    const s = toSequenceBatch(batch!);
    expect(s.customerIds).toEqual(['a', 'b', 'c']);
    expect(Array.from(s.tokens.item!)).toEqual([0, 11, 12, 0, 0, 0, 21, 22, 23]);
    expect(Array.from(s.tokens.event!)).toEqual([0, 2, 3, 0, 0, 0, 2, 2, 4]);
    expect(s.tokens.category).toBeUndefined();
    expect(s.featureNames).toEqual(['dt', 'age', 'num_price']);
    // row a, last position: dt 1, age 8, price 2.5
    expect(Array.from(s.features.slice(2 * 3, 3 * 3))).toEqual([1, 8, 2.5]);
    expect(Array.from(s.features.slice(3 * 3, 6 * 3))).toEqual(new Array(9).fill(0));
    expect(Array.from(s.labels!)).toEqual([1, 0, 0, 0, 1, 1]);
    expect(Array.from(s.weight)).toEqual([1, 4, 1]);
    expect(Array.from(s.historyLength)).toEqual([2, 0, 5]);
  });

  test('a malformed payload is a ProtocolError, not a crash', () => {
    const bytes = encodeBatches([sample()]);
    expect(() => decodeBatches(bytes.slice(0, bytes.length / 2))).toThrow(ProtocolError);
    expect(() => decodeBatches(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))).toThrow(/malformed Arrow IPC payload/);
  });

  test('a batch from another schema version is refused with what to do', () => {
    const other = shardSchema({ tokenColumns: ['event'], numericColumns: [], products: ['any'], labelled: false, asOf: '2017-12-02', maxLength: 3 });
    other.metadata.set('nextbuy.shard_schema', '0');
    const batch = buildShardBatch(other, {
      customerIds: ['a'], historyLength: Int32Array.from([1]), offsets: Int32Array.from([0, 1]), tokens: { event: Int32Array.from([2]) },
      dt: Float32Array.from([0]), age: Float32Array.from([1]), numeric: {}, labels: null, weight: Float32Array.from([1]), split: Int8Array.from([0]),
    });
    expect(() => toSequenceBatch(batch)).toThrow(/schema version "0".*rebuild the shards/);
  });
});
