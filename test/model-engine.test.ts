import { expect, test } from 'vitest';
import { ModelError } from '../core/errors.js';
import { decodeBatches, encodeBatches, toSequenceBatch, type SequenceBatch } from '../proto/shard-batch.js';
import type { WorkerEngine } from '../worker/engine.js';
import { createModelEngine } from '../worker/model-engine.js';
import { artifactToFiles, auc, createModel, exportOnnx, initialWeights, type ModelSpec } from '../worker/model/index.js';
import { maxAbsDiff, PRODUCTS, syntheticBatch, tinySpec, toShardRecordBatch } from './helpers/model.js';

const quiet = { log: () => {} };

/** Four shards, each sent the way the coordinator sends them: Arrow IPC bytes decoded on the worker. */
const shards: SequenceBatch[] = Array.from({ length: 4 }, (_, k) => {
  const rows = syntheticBatch({ size: 300, maxLength: 12, seed: 100 + k });
  rows.customerIds = rows.customerIds.map((id) => `s${k}-${id}`);
  return toSequenceBatch(decodeBatches(encodeBatches([toShardRecordBatch(rows)]))[0]!);
});

async function withEngines(n: number): Promise<WorkerEngine[]> {
  const engines = Array.from({ length: n }, () => createModelEngine(quiet));
  for (let k = 0; k < shards.length; k++) await engines[k % n]!.addTrainingData('ds', `shard-${k}`, [shards[k]!]);
  return engines;
}

/** Local SGD as the coordinator runs it: every engine trains from the same weights, then an example-weighted mean. */
async function trainRounds(engines: WorkerEngine[], spec: ModelSpec, rounds: number, localSteps = 4): Promise<Float32Array> {
  let weights = initialWeights(spec);
  for (let round = 0; round < rounds; round++) {
    const outs = await Promise.all(
      engines.map((e, i) =>
        e.trainRound({ datasetId: 'ds', specJson: JSON.stringify(spec), weights, round, localSteps, seed: 42, shardIds: shardIdsOf(i, engines.length) }),
      ),
    );
    const total = outs.reduce((s, o) => s + o.examples, 0);
    // full batches, except that a pass over a worker's rows ends with a smaller one
    for (const o of outs) expect(o.examples).toBeGreaterThan((localSteps - 1) * spec.batchSize);
    for (const o of outs) expect(o.examples).toBeLessThanOrEqual(localSteps * spec.batchSize);
    for (const o of outs) expect(Number.isFinite(o.loss)).toBe(true);
    weights = weights.map((_, j) => outs.reduce((s, o) => s + o.weights[j]! * (o.examples / total), 0));
  }
  return weights;
}

const shardIdsOf = (i: number, n: number) => shards.map((_, k) => `shard-${k}`).filter((_, k) => k % n === i);

test.each(['lstm', 'attention'] as const)('two %s workers trained in rounds learn the signal and validate on their held-out rows', async (architecture) => {
  const spec = tinySpec(architecture);
  const engines = await withEngines(2);
  // the attention model needs more passes over the data to find the signal (see model-training.test.ts)
  const weights = await trainRounds(engines, spec, architecture === 'lstm' ? 12 : 30, architecture === 'lstm' ? 4 : 8);
  const parts = await Promise.all(engines.map((e, i) => e.validate({ datasetId: 'ds', specJson: JSON.stringify(spec), weights, shardIds: shardIdsOf(i, 2) })));
  const outputs = architecture === 'lstm' ? 1 : PRODUCTS.length;
  const heldOut = shards.reduce((s, b) => s + b.split.filter((v) => v === 1).length, 0);
  expect(parts.reduce((s, p) => s + p.customerIds.length, 0)).toBe(heldOut);
  for (const p of parts) {
    expect(p.scores.length).toBe(p.customerIds.length * outputs);
    expect(p.labels.length).toBe(p.scores.length);
  }
  const scores = parts.flatMap((p) => Array.from(p.scores));
  const labels = parts.flatMap((p) => Array.from(p.labels));
  expect(auc(scores, labels)).toBeGreaterThan(0.85);
});

test('rounds are deterministic given seed and round, and each round restarts Adam: a round depends only on its starting weights', async () => {
  const spec = tinySpec('lstm');
  const a = await trainRounds(await withEngines(2), spec, 3);
  const b = await trainRounds(await withEngines(2), spec, 3);
  expect(b).toEqual(a);

  const [engine] = await withEngines(1);
  const input = (weights: Float32Array, round: number) => ({ datasetId: 'ds', specJson: JSON.stringify(spec), weights, round, localSteps: 3, seed: 5, shardIds: ['shard-0', 'shard-1'] });
  const w1 = (await engine!.trainRound(input(initialWeights(spec), 0))).weights;
  const continued = (await engine!.trainRound(input(w1, 1))).weights;
  const [fresh] = await withEngines(1);
  const restarted = (await fresh!.trainRound(input(w1, 1))).weights;
  // the same engine after a round gives what a fresh worker gives (rounds are recomputed elsewhere when a worker is lost)
  expect(continued).toEqual(restarted);
  expect(maxAbsDiff(continued, w1)).toBeGreaterThan(0);
  expect((await engine!.trainRound(input(w1, 1))).weights).toEqual(restarted);
});

test('loaded artifacts score every row with every model (attention × products) through ONNX, or tfjs when there is no graph', async () => {
  const [engine] = await withEngines(1);
  const lstm = createModel(tinySpec('lstm'));
  const attention = createModel(tinySpec('attention'));
  const lines: string[] = [];
  const fallbackEngine = createModelEngine({ log: (l) => lines.push(l) });
  try {
    for (const m of [lstm, attention]) m.trainSteps(shards[0]!, { steps: 10, seed: 1 });
    const files = (m: typeof lstm, onnx: boolean) =>
      artifactToFiles({ modelVersion: 'v', spec: m.spec, weights: m.getWeights(), onnx: onnx ? exportOnnx(m) : null, vocabulary: null, preprocessing: null, trainingWindow: {}, metrics: {} });

    expect((await engine!.loadModel('lstm-1', files(lstm, true))).runtime).toBe('onnxruntime-cpu');
    expect((await engine!.loadModel('att-1', files(attention, true))).runtime).toBe('onnxruntime-cpu');
    const batch = shards[1]!;
    const scored = await engine!.score(batch, ['lstm-1', 'att-1'], ['hats', 'shoes']);
    expect(scored.scores.length).toBe(batch.size * 3);
    expect(scored.columns).toEqual([
      { modelVersion: 'lstm-1', product: 'shoes' },
      { modelVersion: 'att-1', product: 'hats' },
      { modelVersion: 'att-1', product: 'shoes' },
    ]);
    const expected = new Float32Array(batch.size * 3);
    const l = lstm.predict(batch);
    const a = attention.predict(batch, ['hats', 'shoes']);
    for (let r = 0; r < batch.size; r++) expected.set([l[r]!, a[r * 2]!, a[r * 2 + 1]!], r * 3);
    expect(maxAbsDiff(scored.scores, expected)).toBeLessThanOrEqual(1e-5);

    const loaded = await fallbackEngine.loadModel('att-1', files(attention, false));
    expect(loaded.runtime).toMatch(/^tfjs-/);
    expect(loaded.note).toMatch(/no ONNX graph/);
    expect(lines.some((line) => /att-1 falls back to tfjs scoring/.test(line))).toBe(true);
    const viaTfjs = await fallbackEngine.score(batch, ['att-1'], []);
    expect(viaTfjs.columns.map((c) => c.product)).toEqual(PRODUCTS);
    expect(maxAbsDiff(viaTfjs.scores, attention.predict(batch))).toBeLessThanOrEqual(1e-6);
  } finally {
    lstm.dispose();
    attention.dispose();
  }
});

test('asking for a model that was never loaded, or a shard the worker does not hold, fails with a ModelError saying what to send', async () => {
  const [engine] = await withEngines(1);
  await expect(engine!.score(shards[0]!, ['nope'], [])).rejects.toThrow(/not loaded on this worker: send LoadModel/);
  const spec = tinySpec('lstm');
  const error = await engine!
    .trainRound({ datasetId: 'ds', specJson: JSON.stringify(spec), weights: initialWeights(spec), round: 0, localSteps: 1, seed: 1, shardIds: ['shard-9'] })
    .catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ModelError);
  expect((error as Error).message).toMatch(/shard-9.*LoadTrainingData/);
});
