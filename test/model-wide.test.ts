import { beforeAll, describe, expect, test } from 'vitest';
import { countModelWeights } from '../coordinator/train/count-model.js';
import type { SequenceBatch } from '../proto/shard-batch.js';
import { auc, createModel, exportOnnx, initialWeights, modelFromWeights, OnnxScorer, selectBackend, splitWeights, type SequenceModel } from '../worker/model/index.js';
import { maxAbsDiff, mulberry, PRODUCTS, syntheticBatch, tinySpec } from './helpers/model.js';

beforeAll(async () => {
  await selectBackend({ log: () => {} });
});

const WIDE = ['cat_n_view_7d', 'cat_days_since_event', 'all_n_buy_7d'];

/**
 * The synthetic sequences plus aggregate features per customer and product; the first feature carries a
 * signal the sequence does not: it raises the odds of buying the product by itself.
 */
function withWide(b: SequenceBatch, seed: number): SequenceBatch {
  const rand = mulberry(seed);
  const P = b.products.length;
  const W = WIDE.length;
  const wide = new Float32Array(b.size * P * W);
  const labels = Int8Array.from(b.labels!);
  for (let r = 0; r < b.size; r++) {
    for (let p = 0; p < P; p++) {
      const x = rand() * 3;
      wide[(r * P + p) * W] = x;
      wide[(r * P + p) * W + 1] = rand() * 2;
      wide[(r * P + p) * W + 2] = rand();
      if (rand() < 0.25 * x) labels[r * P + p] = 1;
    }
  }
  return { ...b, wide, wideFeatures: WIDE, labels };
}

const data = withWide(syntheticBatch({ size: 500, maxLength: 12, seed: 31 }), 5);

describe.each(['logistic', 'lstm', 'attention'] as const)('the %s model with aggregate features', (architecture) => {
  test('learns from them, and its ONNX graph scores like tfjs (max |Δ| ≤ 1e-5)', async () => {
    const model: SequenceModel = createModel(tinySpec(architecture, { wideFeatures: WIDE, learningRate: 0.05 }));
    model.trainSteps(data, { steps: 60, seed: 3 });
    const scorer = await OnnxScorer.create(exportOnnx(model), { threads: 1 });
    try {
      const tfjs = model.predict(data);
      const onnx = await scorer.score(data);
      expect(maxAbsDiff(onnx, tfjs)).toBeLessThanOrEqual(1e-5);
      // The first aggregate of `shoes` drives its label: the model ranks by it.
      const width = architecture === 'attention' ? PRODUCTS.length : 1;
      const shoes = Float32Array.from({ length: data.size }, (_, r) => tfjs[r * width]!);
      const labels = Int8Array.from({ length: data.size }, (_, r) => data.labels![r * PRODUCTS.length]!);
      expect(auc(shoes, labels)).toBeGreaterThan(0.7);
    } finally {
      await scorer.dispose();
      model.dispose();
    }
  });
});

test('the logistic model is exactly sigmoid(features · w + b) of the count model coefficients, and explains by feature', () => {
  const spec = tinySpec('logistic', { wideFeatures: WIDE });
  const c = { weights: Float32Array.of(0.8, -0.5, 0.25), bias: -1.5 };
  const model = modelFromWeights(spec, countModelWeights(spec, c));
  try {
    const scores = model.predict(data);
    const W = WIDE.length;
    const P = PRODUCTS.length;
    for (const r of [0, 7, 123]) {
      let z = c.bias;
      for (let j = 0; j < W; j++) z += c.weights[j]! * data.wide[r * P * W + j]!; // shoes is product 0
      expect(scores[r]).toBeCloseTo(1 / (1 + Math.exp(-z)), 6);
    }
    const e = model.explain(data, 7, { top: 3 });
    expect(e.byGradient).toEqual([]);
    const total = e.byFeature!.reduce((s, f) => s + f.contribution, c.bias);
    expect(1 / (1 + Math.exp(-total))).toBeCloseTo(e.score, 6);
    expect(e.byFeature!.map((f) => f.name).sort()).toEqual([...WIDE].sort());
  } finally {
    model.dispose();
  }
});

describe.each(['lstm', 'attention'] as const)('the %s model with its wide part frozen', (architecture) => {
  test('training moves the sequence part and never the wide part, which starts at zero', () => {
    const spec = tinySpec(architecture, { wideFeatures: WIDE, frozenWide: true, learningRate: 0.05 });
    const start = initialWeights(spec);
    const model = modelFromWeights(spec, start);
    try {
      model.trainSteps(data, { steps: 20, seed: 3 });
      const before = splitWeights(spec, start);
      const after = splitWeights(spec, model.getWeights());
      for (const name of architecture === 'attention' ? ['wide/kernel', 'wide/bias'] : ['wide/kernel']) {
        expect(before.get(name)!.values.every((x) => x === 0)).toBe(true);
        expect(Array.from(after.get(name)!.values)).toEqual(Array.from(before.get(name)!.values));
      }
      for (const name of ['lstm/kernel', 'output/kernel', 'output/bias']) {
        expect(maxAbsDiff(after.get(name)!.values, before.get(name)!.values)).toBeGreaterThan(1e-3);
      }
    } finally {
      model.dispose();
    }
  });
});
