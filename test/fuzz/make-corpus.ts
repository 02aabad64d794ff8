/**
 * Regenerates the binary seeds of the fuzz corpus from the text ones and the shard/proto contracts:
 * `npx tsx test/fuzz/make-corpus.ts`. Deterministic; the outputs are committed.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import protobuf from 'protobufjs';
import { encodeResults } from '../../proto/result-batch.js';
import { buildShardBatch, encodeBatches, shardSchema, utf8BytesOf } from '../../proto/shard-batch.js';
import { sampleBatch, seeded } from '../helpers/cluster.js';
import { CORPUS } from './mutate.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

async function parquetSeeds(): Promise<void> {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    const csv = path.join(CORPUS, 'csv/taobao-60.csv');
    // Typed columns (BIGINT ids and times), as a warehouse would export them.
    await c.run(`COPY (SELECT * FROM read_csv('${csv}', header = true)) TO '${path.join(CORPUS, 'parquet/taobao-typed.parquet')}' (FORMAT parquet)`);
    // Everything text, ISO times.
    await c.run(
      `COPY (SELECT CAST(user_id AS VARCHAR) AS user_id, CAST(item_id AS VARCHAR) AS item_id, CAST(category_id AS VARCHAR) AS category_id, behavior_type,
              strftime(to_timestamp(timestamp), '%Y-%m-%dT%H:%M:%SZ') AS timestamp FROM read_csv('${csv}', header = true))
       TO '${path.join(CORPUS, 'parquet/taobao-text.parquet')}' (FORMAT parquet)`,
    );
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

/** A labelled training shard with a numeric feature, and the unlabelled scoring shard the echo worker reads. */
function arrowSeeds(): Map<string, Uint8Array> {
  const random = seeded(5);
  const score = sampleBatch(['c1', 'c2', 'c3', 'é-4'], random, 6);
  const schema = shardSchema({ tokenColumns: ['item', 'event'], numericColumns: ['price'], products: ['any', 'shoes'], labelled: true, asOf: '2017-12-02', maxLength: 4 });
  const offsets = Int32Array.from([0, 2, 2, 5]);
  const train = buildShardBatch(schema, {
    customerIds: ['a', 'b', 'c'],
    historyLength: Int32Array.from([2, 0, 3]),
    offsets,
    tokens: { item: Int32Array.from([2, 3, 4, 5, 6]), event: Int32Array.from([2, 2, 3, 2, 4]) },
    dt: Float32Array.from([1, 2, 0.5, 3, 4]),
    age: Float32Array.from([1, 3, 1, 4, 8]),
    numeric: { price: Float32Array.from([9.5, 1, 0, 3, 2]) },
    labels: Int8Array.from([1, 0, 0, 0, 1, 1]),
    weight: Float32Array.from([1, 2, 1]),
    split: Int8Array.from([0, 1, 0]),
  });
  const results = encodeResults([{ customerIds: utf8BytesOf(['a']), scored: { columns: [{ modelVersion: 'v', product: 'any' }], scores: Float32Array.from([0.5]) } }]);
  return new Map([
    ['score-shard.arrows', encodeBatches([score])],
    ['train-shard.arrows', encodeBatches([train])],
    ['two-batches.arrows', encodeBatches([score, sampleBatch(['z'], random, 6)])],
    ['result-batch.arrows', results], // valid Arrow, wrong schema for a shard
  ]);
}

/** ScoreRequest messages as protobuf bytes: a header, and an Arrow body. */
async function grpcSeeds(arrow: Uint8Array): Promise<Map<string, Uint8Array>> {
  const root = await protobuf.load(path.join(ROOT, 'proto/nextbuy.proto'));
  const ScoreRequest = root.lookupType('nextbuy.v1.ScoreRequest');
  const msg = (o: Record<string, unknown>) => ScoreRequest.encode(ScoreRequest.fromObject(o)).finish();
  return new Map([
    ['header.bin', msg({ header: { shardId: 'shard-0', attempt: 1, modelVersions: ['m-lstm-1', 'm-attn-1'], products: ['any', 'cat-7'] } })],
    ['arrow.bin', msg({ arrow })],
  ]);
}

const arrow = arrowSeeds();
for (const [name, bytes] of arrow) await writeFile(path.join(CORPUS, 'arrow', name), bytes);
for (const [name, bytes] of await grpcSeeds(arrow.get('score-shard.arrows')!)) await writeFile(path.join(CORPUS, 'grpc', name), bytes);
await parquetSeeds();
console.log('corpus written to', CORPUS, (await readFile(path.join(CORPUS, 'grpc/header.bin'))).byteLength);
