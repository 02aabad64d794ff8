/**
 * Seeded random shard batches with no signal in them, for data-plane tests and the transport benchmark
 * (no vitest here, so a benchmark script can import it).
 */
import { writeFile } from 'node:fs/promises';
import { RecordBatchStreamWriter, type RecordBatch } from 'apache-arrow';
import { buildShardBatch, shardSchema } from '../../proto/shard-batch.js';

export function sampleShardSchema(maxLength = 20) {
  return shardSchema({ tokenColumns: ['item', 'category', 'event'], numericColumns: [], products: ['any'], labelled: false, asOf: '2017-12-02', maxLength });
}

export interface SampleBatchOptions {
  /** Fewest events per customer. @default 0 */
  minLength?: number;
  /** Token ids are drawn from 2 .. vocabulary + 1. @default 500 */
  vocabulary?: number;
  /** dt and age are drawn from [0, valueScale). @default 10 */
  valueScale?: number;
}

/** Random (seeded) event sequences for `customers`, as one shard record batch. */
export function sampleBatch(customers: string[], random: () => number, maxLength = 20, o: SampleBatchOptions = {}): RecordBatch {
  const minLength = o.minLength ?? 0;
  const vocabulary = o.vocabulary ?? 500;
  const valueScale = o.valueScale ?? 10;
  const lengths = customers.map(() => minLength + Math.floor(random() * (maxLength - minLength + 1)));
  const offsets = new Int32Array(customers.length + 1);
  lengths.forEach((n, i) => (offsets[i + 1] = offsets[i]! + n));
  const events = offsets[customers.length]!;
  const ints = () => Int32Array.from({ length: events }, () => 2 + Math.floor(random() * vocabulary));
  const floats = () => Float32Array.from({ length: events }, () => random() * valueScale);
  return buildShardBatch(sampleShardSchema(maxLength), {
    customerIds: customers,
    historyLength: Int32Array.from(lengths),
    offsets,
    tokens: { item: ints(), category: ints(), event: ints() },
    dt: floats(),
    age: floats(),
    numeric: {},
    labels: null,
    weight: new Float32Array(customers.length).fill(1),
    split: new Int8Array(customers.length),
  });
}

export async function writeShardFile(file: string, batches: RecordBatch[]): Promise<void> {
  const writer = new RecordBatchStreamWriter();
  for (const b of batches) writer.write(b);
  writer.finish();
  await writeFile(file, writer.toUint8Array(true));
}
