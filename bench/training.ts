/**
 * Data-parallel training throughput: sequences/s with 1, 2 and 4 worker processes (real gRPC on
 * 127.0.0.1, local SGD with weight averaging every 8 steps), scaling efficiency, bytes moved per
 * synchronisation round, and the time one epoch of 1 M sequences would take at that rate.
 *
 *   node --import tsx bench/training.ts [--customers 12000] [--workers 1,2,4] [--epochs 1]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { trainModel } from '../coordinator/train/index.js';
import { syntheticSpec, withModelWorkers } from '../test/helpers/train.js';
import { writeSyntheticShards } from '../test/helpers/synthetic-shards.js';
import { machineLine } from './machine.js';

const { values } = parseArgs({
  options: { customers: { type: 'string', default: '12000' }, workers: { type: 'string', default: '1,2,4' }, epochs: { type: 'string', default: '1' } },
});
const customers = Number(values.customers);
const workerCounts = values.workers!.split(',').map(Number);
const epochs = Number(values.epochs);

const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-bench-train-'));
// The reference shape of the model benchmark: item vocabulary 5,000, embedding 32, LSTM 64, length 50, batch 256.
const data = await writeSyntheticShards({ dir, customers, shards: 8, maxLength: 50, itemVocab: 5_000, categoryVocab: 200, seed: 3, validationShare: 0.1 });
const spec = syntheticSpec(data, { maxLength: 50, embeddingDim: 32, hiddenUnits: 64, denseUnits: 32, batchSize: 256 });

console.log(`training benchmark · ${machineLine()}`);
console.log(`${customers.toLocaleString('en-US')} synthetic customers in 8 shards · LSTM: vocabulary 5,000, embedding 32, hidden 64, length 50, batch 256 · weights averaged once per pass (the default)`);
console.log('workers  sequences/s  efficiency  bytes per round  rounds/epoch  epoch of 1 M sequences  validation AUC');
let single = 0;
for (const n of workerCounts) {
  await withModelWorkers(n, async (cluster) => {
    const model = await trainModel({
      spec,
      datasetId: `bench-${n}`,
      shards: data.shards,
      participants: cluster.pool.ready(),
      epochs,
      patience: epochs,
      checkpointDir: path.join(dir, `ckpt-${n}`),
    });
    const examples = model.history.reduce((s, h) => s + h.examples, 0);
    const trainMs = model.history.reduce((s, h) => s + h.ms, 0);
    const rate = examples / (trainMs / 1000);
    if (n === workerCounts[0]) single = rate / n;
    const rounds = model.history[0]!.rounds;
    const bytesPerRound = model.history[0]!.bytesMoved / rounds;
    console.log(
      `${String(n).padStart(7)}  ${rate.toFixed(0).padStart(11)}  ${((100 * rate) / (single * n)).toFixed(0).padStart(9)}%  ${(bytesPerRound / 2 ** 20).toFixed(1).padStart(12)} MiB  ${String(rounds).padStart(12)}  ${((1e6 / rate) / 60).toFixed(1).padStart(18)} min  ${model.bestAuc.toFixed(3).padStart(14)}`,
    );
  }, 120_000);
}
await rm(dir, { recursive: true, force: true });
