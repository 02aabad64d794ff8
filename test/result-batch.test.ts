import { Field, Float32, Float64, MessageHeader, MessageReader, RecordBatch, Schema, Struct, Utf8, makeData, vectorFromArray } from 'apache-arrow';
import { describe, expect, test } from 'vitest';
import { ProtocolError } from '../core/errors.js';
import { REPLY_HEADROOM } from '../proto/index.js';
import { checkIpcStream } from '../proto/ipc-guard.js';
import { ShardResults, decodeResults, encodeResults, readResultColumns, resultSchema, type ScoredRows } from '../proto/result-batch.js';
import { encodeBatches, utf8BytesOf, type Utf8Bytes } from '../proto/shard-batch.js';
import { sampleBatch, seeded } from './helpers/cluster.js';

type Columns = ScoredRows['scored']['columns'];
const columns = (modelVersion: string, products: string[]): Columns => products.map((product) => ({ modelVersion, product }));

/** The rows a part must decode to, computed the slow, obvious way. */
function expectedRows(ids: string[], cols: Columns, scores: Float32Array) {
  return {
    customerIds: ids.flatMap((id) => cols.map(() => id)),
    products: ids.flatMap(() => cols.map((c) => c.product)),
    modelVersions: ids.flatMap(() => cols.map((c) => c.modelVersion)),
    scores: [...scores],
  };
}

function part(ids: string[], cols: Columns, seed = 1): { rows: ScoredRows; expected: ReturnType<typeof expectedRows> } {
  const scores = Float32Array.from({ length: ids.length * cols.length }, (_, i) => ((i * 7919 + seed * 104729) % 1000) / 1000);
  return { rows: { customerIds: utf8BytesOf(ids), scored: { columns: cols, scores } }, expected: expectedRows(ids, cols, scores) };
}

/** The same rows as a result stream written by Arrow's own stream writer. */
function writtenByArrow(expected: ReturnType<typeof expectedRows>): Uint8Array {
  const schema = resultSchema();
  const children = [
    vectorFromArray(expected.customerIds, new Utf8()),
    vectorFromArray(expected.products, new Utf8()),
    vectorFromArray(expected.modelVersions, new Utf8()),
    vectorFromArray(expected.scores, new Float32()),
  ].map((v) => v.data[0]!);
  return encodeBatches([new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: expected.scores.length, nullCount: 0, children }))]);
}

const decoded = (bytes: Uint8Array) =>
  decodeResults(bytes).map((b) => {
    const c = readResultColumns(b);
    return { ...c, scores: [...c.scores] };
  });

test('one row per customer × column, customer-major, through Arrow’s own reader', () => {
  const p = part(['a', 'bé', 'c'], [
    { modelVersion: 'v1', product: 'any' },
    { modelVersion: 'v2', product: 'shoes' },
  ]);
  expect(decoded(encodeResults([p.rows]))).toEqual([p.expected]);
});

test('a stream holds one batch per part, whatever their sizes, products and model versions', () => {
  const parts = [
    part(['a', 'b'], columns('v1', ['any']), 1),
    part(['a', 'b', 'c'], columns('v1', ['any', 'shoes', 'bags']), 2),
    part(['x'], columns('v2', ['']), 3), // a single-product model scores one column named ''
    part([], columns('v1', ['any']), 4),
    part(['日本', 'ü', ''], columns('lstm-2026-11-23', ['any', 'cat 7']), 5),
  ];
  expect(decoded(encodeResults(parts.map((p) => p.rows)))).toEqual(parts.map((p) => p.expected));
});

test('ids may be a view into a larger column (offsets not starting at 0)', () => {
  const all = utf8BytesOf(['skip-me', 'a', 'bb', 'ccc']);
  const ids: Utf8Bytes = { length: 3, offsets: all.offsets.subarray(1), values: all.values };
  for (const cols of [columns('v', ['any']), columns('v', ['any', 'shoes'])]) {
    const scores = new Float32Array(3 * cols.length).fill(0.25);
    expect(decoded(encodeResults([{ customerIds: ids, scored: { columns: cols, scores } }]))).toEqual([expectedRows(['a', 'bb', 'ccc'], cols, scores)]);
  }
});

test('decodes exactly as the same columns written by Arrow’s stream writer, with every body buffer 8-byte aligned', () => {
  const p = part(['c1', 'c2', 'c3', 'c4', 'c5'], columns('v9', ['p1', 'p2', 'p3']));
  const ours = encodeResults([p.rows]);
  expect(decoded(ours)).toEqual(decoded(writtenByArrow(p.expected)));

  const messages = [...new MessageReader(ours)];
  expect(messages.map((m) => m.headerType)).toEqual([MessageHeader.Schema, MessageHeader.RecordBatch]);
  const batch = messages[1]!;
  if (!batch.isRecordBatch()) throw new Error('second message is not a record batch');
  expect(batch.bodyLength % 8).toBe(0);
  const offsets = batch.header().buffers.map((b) => b.offset);
  expect(offsets).toHaveLength(11);
  expect(offsets.filter((o) => o % 8 !== 0)).toEqual([]);
});

test('an engine that returns the wrong number of scores is a ProtocolError naming the counts', () => {
  const rows: ScoredRows = { customerIds: utf8BytesOf(['a', 'b']), scored: { columns: columns('v', ['any', 'shoes']), scores: new Float32Array(3) } };
  expect(() => encodeResults([rows])).toThrow(ProtocolError);
  expect(() => encodeResults([rows])).toThrow(/3 scores for 2 customers × 2 columns \(4 expected\)/);
});

describe('a shard’s results joined from its replies', () => {
  test('every reply’s batches, in order, in one stream that Arrow reads', () => {
    const parts = [part(['a', 'b'], columns('v1', ['any', 'shoes']), 1), part(['c'], columns('v1', ['any', 'shoes']), 2), part(['d', 'e', 'f'], columns('v1', ['any', 'shoes']), 3)];
    const results = new ShardResults();
    expect(results.add(encodeResults([parts[0]!.rows, parts[1]!.rows], { headroom: REPLY_HEADROOM }))).toBe(6);
    expect(results.add(encodeResults([parts[2]!.rows]))).toBe(6);
    expect(results.rows).toBe(12);
    expect(decoded(results.toStream())).toEqual(parts.map((p) => p.expected));
  });

  test('no replies: an empty stream of the result schema', () => {
    const stream = new ShardResults().toStream();
    expect(decodeResults(stream).reduce((n, b) => n + b.numRows, 0)).toBe(0);
    expect(checkIpcStream(stream)).toHaveLength(1);
  });

  test('a result stream written by another Arrow writer is accepted when its schema reads the same', () => {
    const p = part(['x', 'y'], columns('v', ['any']));
    const results = new ShardResults();
    results.add(writtenByArrow(p.expected));
    expect(decoded(results.toStream())).toEqual([p.expected]);
  });

  test('anything else is a ProtocolError saying what is wrong, and adds nothing', () => {
    const results = new ShardResults();
    const good = encodeResults([part(['a'], columns('v', ['any'])).rows]);
    const wrongType = new Schema(resultSchema().fields.map((f) => (f.name === 'score' ? new Field('score', new Float64(), false) : f)), resultSchema().metadata);
    const float64Scores = new RecordBatch(
      wrongType,
      makeData({
        type: new Struct(wrongType.fields),
        length: 1,
        nullCount: 0,
        children: [...['a', 'any', 'v'].map((s) => vectorFromArray([s], new Utf8()).data[0]!), vectorFromArray([0.5], new Float64()).data[0]!],
      }),
    );
    expect(() => results.add(good.subarray(0, good.length - 20))).toThrow(/malformed Arrow IPC payload/);
    expect(() => results.add(encodeBatches([float64Scores]))).toThrow(/score: Float64.*expected.*score: Float32/);
    expect(() => results.add(encodeBatches([sampleBatch(['a'], seeded(3))]))).toThrow(/result batch has schema version "none"/);
    expect(results.rows).toBe(0);
    expect(decodeResults(results.toStream()).reduce((n, b) => n + b.numRows, 0)).toBe(0);
  });
});
