import * as tf from '@tensorflow/tfjs';
import { expect, test } from 'vitest';
import { ModelError } from '../core/errors.js';
import { createModel, parseRuntimeList, selectBackend, useBackend, weightLayout } from '../worker/model/index.js';
import { syntheticBatch, tinySpec } from './helpers/model.js';

test('the backend is chosen best first, the native ones are skipped with a reason, and the choice is logged once', async () => {
  const lines: string[] = [];
  const choice = await selectBackend({ log: (l) => lines.push(l) });
  // tfjs-node(-gpu) are optional dependencies that cannot install here; where they do, they win.
  if (choice.name === 'tfjs-wasm') {
    expect(choice.skipped.map((s) => s.name)).toEqual(['tfjs-node-gpu', 'tfjs-node']);
    for (const s of choice.skipped) expect(s.why).toMatch(/not installed|does not load|did not initialise/);
    expect(tf.getBackend()).toBe('wasm');
  }
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(`tfjs runs on ${choice.name}`);
  expect(await selectBackend({ log: (l) => lines.push(l) })).toBe(choice);
  expect(lines).toHaveLength(1);
});

test('only the listed runtimes are tried, in the order given; an unknown name is refused', async () => {
  const quiet = { log: () => {} };
  expect((await selectBackend({ ...quiet, candidates: ['tfjs-cpu', 'tfjs-wasm'] })).name).toBe('tfjs-cpu');
  expect(tf.getBackend()).toBe('cpu');
  const choice = await selectBackend({ ...quiet, candidates: ['tfjs-node', 'tfjs-wasm'] });
  if (choice.name === 'tfjs-wasm') {
    // where the native runtimes are absent (as here): skipped with a reason, and refused when asked for by name
    expect(choice.skipped).toEqual([{ name: 'tfjs-node', why: expect.stringMatching(/tfjs-node/) }]);
    await expect(useBackend('tfjs-node-gpu')).rejects.toThrow(ModelError);
  }
  expect(selectBackend(quiet)).toBe(selectBackend(quiet)); // without candidates: the last choice stands
  expect(parseRuntimeList(' tfjs-wasm, tfjs-cpu ')).toEqual(['tfjs-wasm', 'tfjs-cpu']);
  expect(parseRuntimeList(undefined)).toEqual(['tfjs-node-gpu', 'tfjs-node', 'tfjs-wasm', 'tfjs-cpu']);
  expect(() => parseRuntimeList('tfjs-wasm,tfjs-cuda')).toThrow(/NEXTBUY_TFJS_RUNTIMES names "tfjs-cuda"/);
});

test('UnsortedSegmentSum on wasm sums rows into segments like the reference JavaScript backend', async () => {
  const x = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]];
  const ids = [2, 0, 2, 5, -1]; // 5 and -1 are out of range: dropped, as TensorFlow does
  const run = () => tf.tidy(() => Array.from(tf.unsortedSegmentSum(tf.tensor2d(x), tf.tensor1d(ids, 'int32'), 3).dataSync()));
  await useBackend('tfjs-cpu');
  const expected = run();
  await useBackend('tfjs-wasm');
  expect(run()).toEqual(expected);
  expect(expected).toEqual([3, 4, 0, 0, 6, 8]);
});

test('the wasm backend trains the embeddings (the kernel is exercised), and only the rows of tokens seen move', async () => {
  await useBackend('tfjs-wasm');
  const spec = tinySpec('lstm', { vocabSizes: { item: 60 } });
  const batch = syntheticBatch({ size: 64, maxLength: 12, seed: 9, vocab: { item: 40 } }); // ids 40..59 never occur
  const model = createModel(spec);
  try {
    const item = weightLayout(spec).find((w) => w.name === 'embedding/item')!;
    const before = model.getWeights().slice(item.offset, item.offset + item.size);
    model.trainSteps(batch, { steps: 2, seed: 1 });
    const after = model.getWeights().slice(item.offset, item.offset + item.size);
    const dim = spec.embeddingDim;
    const moved = (row: number) => after.subarray(row * dim, (row + 1) * dim).some((v, k) => v !== before[row * dim + k]);
    expect(moved(0)).toBe(true); // padding is a learnable row
    expect(moved(7)).toBe(true); // a planted item
    for (let row = 40; row < 60; row++) expect(moved(row)).toBe(false);
  } finally {
    model.dispose();
  }
});

test('training gives the same weights on wasm as on the plain JavaScript backend (to float rounding)', async () => {
  const run = async (name: 'tfjs-wasm' | 'tfjs-cpu') => {
    await useBackend(name);
    const model = createModel(tinySpec('attention'));
    try {
      model.trainSteps(syntheticBatch({ size: 64, maxLength: 12, seed: 2 }), { steps: 2, seed: 3 });
      return model.getWeights();
    } finally {
      model.dispose();
    }
  };
  const cpu = await run('tfjs-cpu');
  const wasm = await run('tfjs-wasm');
  let max = 0;
  for (let i = 0; i < cpu.length; i++) max = Math.max(max, Math.abs(cpu[i]! - wasm[i]!));
  expect(max).toBeLessThan(1e-4);
});
