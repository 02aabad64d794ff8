import { beforeAll, describe, expect, test } from 'vitest';
import { createModel, exportOnnx, OnnxScorer, selectBackend, specFromOnnx, tryExportOnnx, weightCount, type SequenceModel } from '../worker/model/index.js';
import { maxAbsDiff, PRODUCTS, syntheticBatch, tinySpec } from './helpers/model.js';

beforeAll(async () => {
  await selectBackend({ log: () => {} });
});

// Includes customers with no history at all (every position padding).
const data = syntheticBatch({ size: 400, maxLength: 12, seed: 21 });

function trained(architecture: 'lstm' | 'attention', overrides: Parameters<typeof tinySpec>[1] = {}): SequenceModel {
  const model = createModel(tinySpec(architecture, overrides));
  model.trainSteps(data, { steps: 25, seed: 4 }); // move the weights away from their initial values
  return model;
}

describe.each(['lstm', 'attention'] as const)('the %s model exported to ONNX', (architecture) => {
  test('scores like tfjs on the same inputs (max |Δ| ≤ 1e-5), all-padding rows included', async () => {
    const model = trained(architecture);
    const scorer = await OnnxScorer.create(exportOnnx(model), { threads: 1 });
    try {
      expect(scorer.runtime).toMatch(/^onnxruntime-/);
      const tfjsScores = model.predict(data);
      const onnxScores = await scorer.score(data);
      expect(onnxScores.length).toBe(data.size * (architecture === 'lstm' ? 1 : PRODUCTS.length));
      expect(maxAbsDiff(onnxScores, tfjsScores)).toBeLessThanOrEqual(1e-5);
      const empty = data.historyLength.findIndex((n) => n === 0);
      expect(empty).toBeGreaterThanOrEqual(0);
      expect(Number.isFinite(onnxScores[empty * (architecture === 'lstm' ? 1 : PRODUCTS.length)])).toBe(true);
      // the scores are not all alike: parity is not between two constant functions
      expect(Math.max(...onnxScores) - Math.min(...onnxScores)).toBeGreaterThan(0.01);
    } finally {
      await scorer.dispose();
      model.dispose();
    }
  });

  test('scores like tfjs when a column has fewer tokens than embedding dimensions (it is fed one-hot)', async () => {
    const model = trained(architecture, { embeddingDim: 8 }); // event: 6 tokens < 8 dimensions; item and category are not
    const scorer = await OnnxScorer.create(exportOnnx(model), { threads: 1 });
    try {
      expect(maxAbsDiff(await scorer.score(data), model.predict(data))).toBeLessThanOrEqual(1e-5);
    } finally {
      await scorer.dispose();
      model.dispose();
    }
  });

  test('carries its spec, so the bytes alone are enough to score', () => {
    const model = trained(architecture);
    try {
      expect(specFromOnnx(exportOnnx(model))).toEqual(model.spec);
    } finally {
      model.dispose();
    }
  });
});

test('an attention model from before the last-state head (no headReadsLastState) keeps its layout and scores like tfjs', async () => {
  const old = tinySpec('attention', { headReadsLastState: undefined });
  expect(weightCount(tinySpec('attention')) - weightCount(old)).toBe(2 * old.hiddenUnits * old.denseUnits); // rows for h and h ⊙ q
  const model = trained('attention', { headReadsLastState: undefined });
  const scorer = await OnnxScorer.create(exportOnnx(model), { threads: 1 });
  try {
    const batch = syntheticBatch({ size: 64, maxLength: 12, seed: 77 });
    expect(maxAbsDiff(await scorer.score(batch), model.predict(batch))).toBeLessThanOrEqual(1e-5);
  } finally {
    await scorer.dispose();
    model.dispose();
  }
});

test('one attention graph scores any subset of products, in the order asked', async () => {
  const model = trained('attention');
  const scorer = await OnnxScorer.create(exportOnnx(model));
  try {
    const asked = ['hats', 'shoes'];
    const subset = await scorer.score(data, asked);
    const all = await scorer.score(data);
    expect(subset.length).toBe(data.size * 2);
    for (let r = 0; r < data.size; r++) {
      expect(subset[r * 2]).toBe(all[r * 3 + 2]);
      expect(subset[r * 2 + 1]).toBe(all[r * 3]);
    }
    expect(maxAbsDiff(subset, model.predict(data, asked))).toBeLessThanOrEqual(1e-5);
    await expect(scorer.score(data, ['socks'])).rejects.toThrow(/socks/);
  } finally {
    await scorer.dispose();
    model.dispose();
  }
});

test('a model that cannot be exported yields null and a log line saying scoring falls back to tfjs', () => {
  const lines: string[] = [];
  const broken = { spec: tinySpec('lstm'), getWeights: () => new Float32Array(3) };
  expect(tryExportOnnx(broken, (l) => lines.push(l))).toBeNull();
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/cannot be exported to ONNX.*scored with tfjs/);
});
