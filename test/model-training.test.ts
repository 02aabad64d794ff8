import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { auc, createModel, fit, labelledScores, rowsOfSplit, selectBackend, weightLayout } from '../worker/model/index.js';
import { lstmRecurrence } from '../worker/model/lstm.js';
import { maxAbsDiff, PRODUCTS, referenceRecurrence, syntheticBatch, tinySpec } from './helpers/model.js';

beforeAll(async () => {
  await selectBackend({ log: () => {} });
});

const data = syntheticBatch({ size: 1600, maxLength: 12, seed: 3 });
const train = rowsOfSplit(data, 0);
const validation = rowsOfSplit(data, 1);

describe.each(['lstm', 'attention'] as const)('the %s model', (architecture) => {
  test('learns the planted signal: validation AUC well above chance', async () => {
    const { model, history, bestAuc, bestEpoch } = await fit(tinySpec(architecture), [train], [validation], { epochs: 8, patience: 2 });
    try {
      expect(bestAuc).toBeGreaterThan(0.9);
      expect(history[0]!.loss).toBeGreaterThan(history[bestEpoch - 1]!.loss);
      if (architecture === 'attention') {
        // one model, every product: each product's own AUC is high too
        const { scores, labels } = labelledScores(model, validation);
        PRODUCTS.forEach((_, p) => {
          const column = (a: ArrayLike<number>) => Array.from({ length: validation.size }, (_, r) => a[r * PRODUCTS.length + p]!);
          expect(auc(column(scores), column(labels))).toBeGreaterThan(0.9);
        });
      }
    } finally {
      model.dispose();
    }
  });

  test('the same data, spec and seed give identical weights; another seed does not', () => {
    const run = (seed: number) => {
      const model = createModel(tinySpec(architecture, { seed }));
      try {
        model.trainSteps(train, { steps: 6, seed: 11 });
        return model.getWeights();
      } finally {
        model.dispose();
      }
    };
    const a = run(1);
    expect(run(1)).toEqual(a);
    expect(maxAbsDiff(run(2), a)).toBeGreaterThan(0);
  });

  test('training can stop and continue where it left off: two halves equal one whole run', () => {
    const spec = tinySpec(architecture);
    const whole = createModel(spec);
    const halves = createModel(spec);
    try {
      const perPass = Math.ceil(train.size / spec.batchSize);
      const split = perPass + 3; // the second half starts inside the second pass
      whole.trainSteps(train, { steps: split + 9, seed: 5 });
      halves.trainSteps(train, { steps: split, seed: 5 });
      halves.trainSteps(train, { steps: 9, seed: 5, startStep: split });
      expect(halves.getWeights()).toEqual(whole.getWeights());
    } finally {
      whole.dispose();
      halves.dispose();
    }
  });

  test('training, scoring and explaining leave no tensors behind; dispose frees the rest', () => {
    const start = tf.memory().numTensors;
    const model = createModel(tinySpec(architecture));
    try {
      model.trainSteps(train, { steps: 2, seed: 1 }); // the optimizer's state is created once, here
      const before = tf.memory().numTensors;
      model.trainSteps(train, { steps: 3, seed: 2 });
      model.predict(validation);
      model.explain(validation, 0, { top: 2 });
      model.getWeights();
      model.setWeights(model.getWeights());
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      model.dispose();
    }
    expect(tf.memory().numTensors).toBe(start);
  });

  test('a customer with no history gets a finite score', () => {
    const model = createModel(tinySpec(architecture));
    try {
      const empty = data.historyLength.findIndex((n) => n === 0);
      expect(empty).toBeGreaterThanOrEqual(0);
      const scores = model.predict(data);
      const width = architecture === 'lstm' ? 1 : PRODUCTS.length;
      expect(scores.length).toBe(data.size * width);
      for (let k = 0; k < width; k++) expect(Number.isFinite(scores[empty * width + k])).toBe(true);
    } finally {
      model.dispose();
    }
  });
});

test('early stopping restores the best epoch: the returned weights score the best validation AUC', async () => {
  const spec = tinySpec('lstm', { learningRate: 0.08 });
  const { model, history, bestEpoch, bestAuc, stoppedEarly } = await fit(spec, [train], [validation], { epochs: 6, patience: 1 });
  try {
    expect(bestAuc).toBe(Math.max(...history.map((h) => h.validationAuc)));
    expect(history[bestEpoch - 1]!.validationAuc).toBe(bestAuc);
    const { scores, labels } = labelledScores(model, validation);
    expect(auc(scores, labels)).toBeCloseTo(bestAuc, 6);
    if (stoppedEarly) expect(history.length - bestEpoch).toBe(1);
    else expect(history.length).toBe(6);
  } finally {
    model.dispose();
  }
});

test('rows with sampling weight 0 change nothing; a larger positive-class weight raises scores', () => {
  const zero = { ...train, weight: new Float32Array(train.size) };
  const model = createModel(tinySpec('lstm'));
  try {
    const before = model.getWeights();
    model.trainSteps(zero, { steps: 3, seed: 1 });
    expect(model.getWeights()).toEqual(before);
  } finally {
    model.dispose();
  }
  const meanScore = (positiveWeight: number) => {
    const m = createModel(tinySpec('lstm', { positiveWeight }));
    try {
      m.trainSteps(train, { steps: 20, seed: 1 });
      const s = m.predict(validation);
      return s.reduce((a, b) => a + b, 0) / s.length;
    } finally {
      m.dispose();
    }
  };
  expect(meanScore(8)).toBeGreaterThan(meanScore(1) + 0.05);
});

test('the hand-written LSTM backward pass equals autodiff, and its forward equals Keras (tf.layers.lstm)', () => {
  const [steps, batch, units, width] = [7, 5, 4, 3];
  tf.tidy(() => {
    const xp = tf.randomNormal([steps, batch, 4 * units], 0, 1, 'float32', 1) as tf.Tensor3D;
    const u = tf.randomNormal([units, 4 * units], 0, 0.5, 'float32', 2) as tf.Tensor2D;
    const probe = tf.randomNormal([steps, batch, units], 0, 1, 'float32', 3);
    const loss = (f: typeof lstmRecurrence) => (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a as tf.Tensor3D, b as tf.Tensor2D), probe));
    const mine = tf.grads(loss(lstmRecurrence))([xp, u]);
    const reference = tf.grads(loss(referenceRecurrence))([xp, u]);
    expect(maxAbsDiff(mine[0]!.dataSync(), reference[0]!.dataSync())).toBeLessThan(1e-5);
    expect(maxAbsDiff(mine[1]!.dataSync(), reference[1]!.dataSync())).toBeLessThan(1e-5);
    expect(maxAbsDiff(mine[1]!.dataSync(), new Float32Array(mine[1]!.size))).toBeGreaterThan(1e-3);

    const x = tf.randomNormal([batch, steps, width], 0, 1, 'float32', 4) as tf.Tensor3D;
    const kernel = tf.randomNormal([width, 4 * units], 0, 0.5, 'float32', 5) as tf.Tensor2D;
    const bias = tf.randomNormal([4 * units], 0, 0.5, 'float32', 6);
    // Keras ≥ 2.3 (and PyTorch, ONNX) gate with sigmoid; tfjs-layers still defaults to hard sigmoid.
    const keras = tf.layers.lstm({ units, returnSequences: true, recurrentActivation: 'sigmoid' });
    keras.apply(x); // builds the layer
    keras.setWeights([kernel, u, bias]);
    const expected = keras.apply(x) as tf.Tensor3D; // [batch, steps, units]
    const pre = tf.reshape(tf.add(tf.matMul(tf.reshape(tf.transpose(x, [1, 0, 2]), [steps * batch, width]), kernel), bias), [steps, batch, 4 * units]);
    const got = tf.transpose(lstmRecurrence(pre as tf.Tensor3D, u), [1, 0, 2]);
    expect(maxAbsDiff(got.dataSync(), expected.dataSync())).toBeLessThan(1e-5);
  });
});

test('weights travel as one flat vector in a fixed, documented order', () => {
  const spec = tinySpec('attention');
  const names = weightLayout(spec).map((w) => w.name);
  expect(names).toEqual([
    'embedding/item', 'embedding/category', 'embedding/event',
    'lstm/kernel', 'lstm/recurrent_kernel', 'lstm/bias',
    'query/embedding', 'dense/kernel', 'dense/bias', 'output/kernel', 'output/bias',
  ]);
  const model = createModel(spec);
  try {
    const w = model.getWeights();
    const shifted = w.map((v) => v + 0.25);
    model.setWeights(shifted);
    expect(model.getWeights()).toEqual(shifted);
    expect(() => model.setWeights(w.subarray(1))).toThrow(/needs/);
  } finally {
    model.dispose();
  }
});
