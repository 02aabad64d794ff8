import * as tf from '@tensorflow/tfjs';
import { expect, test } from 'vitest';
import { useBackend } from '../worker/model/index.js';
import { lstmRecurrence, lstmRecurrenceWithOps } from '../worker/model/lstm.js';
import { maxAbsDiff } from './helpers/model.js';

/** Runs the same computation on the plain JavaScript backend (the reference) and on wasm with nextbuy's kernels. */
async function onBoth(compute: () => tf.Tensor | tf.Tensor[]): Promise<{ cpu: number[][]; wasm: number[][] }> {
  const run = () => {
    const out = tf.tidy(compute);
    const list = Array.isArray(out) ? out : [out];
    const values = list.map((t) => Array.from(t.dataSync()));
    tf.dispose(list);
    return values;
  };
  await useBackend('tfjs-cpu');
  const cpu = run();
  await useBackend('tfjs-wasm');
  return { cpu, wasm: run() };
}

function expectClose(a: number[][], b: number[][], tolerance: number): void {
  expect(a.length).toBe(b.length);
  a.forEach((values, i) => expect(maxAbsDiff(values, b[i]!)).toBeLessThanOrEqual(tolerance));
}

const seeded = (shape: number[], seed: number) => tf.randomUniform(shape, -2, 2, 'float32', seed);

test.each([
  ['wasm, SIMD gate arithmetic (units a multiple of 4)', 'tfjs-wasm', 8],
  ['wasm, JavaScript gate arithmetic (other units)', 'tfjs-wasm', 6],
  ['the JavaScript backend', 'tfjs-cpu', 8],
] as const)('the fused LSTM kernels on %s equal the op-by-op recurrence, forward and backward', async (_, runtime, units) => {
  await useBackend(runtime);
  const [steps, batch] = [9, 7];
  tf.tidy(() => {
    const xp = seeded([steps, batch, 4 * units], 1) as tf.Tensor3D;
    const u = tf.mul(seeded([units, 4 * units], 2), 0.3) as tf.Tensor2D;
    const probe = seeded([steps, batch, units], 3);
    const loss = (f: typeof lstmRecurrence) => (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a as tf.Tensor3D, b as tf.Tensor2D), probe));
    expect(maxAbsDiff(lstmRecurrence(xp, u).dataSync(), lstmRecurrenceWithOps(xp, u).dataSync())).toBeLessThan(1e-6);
    const fused = tf.grads(loss(lstmRecurrence))([xp, u]);
    const ops = tf.grads(loss(lstmRecurrenceWithOps))([xp, u]);
    expect(maxAbsDiff(fused[0]!.dataSync(), ops[0]!.dataSync())).toBeLessThan(1e-5);
    expect(maxAbsDiff(fused[1]!.dataSync(), ops[1]!.dataSync())).toBeLessThan(1e-5);
  });
});

test('Slice, SplitV and Unpack on wasm read only what they return, and return what the JavaScript backend does', async () => {
  const { cpu, wasm } = await onBoth(() => {
    const x = seeded([4, 5, 6], 4);
    return [
      tf.slice(x, [1, 0, 0], [2, 5, 6]), // contiguous
      tf.slice(x, [0, 1, 2], [4, 3, 3]), // strided in two dimensions
      tf.slice(x, [3, 4, 5], [1, 1, 1]),
      ...tf.split(x, [2, 4], 2),
      ...tf.split(x, 5, 1),
      ...tf.unstack(x, 0),
      ...tf.unstack(x, 2),
      tf.slice(tf.tensor1d([1, 2, 3, 4, 5], 'int32'), [1], [3]),
    ];
  });
  expect(wasm).toEqual(cpu);
});

test('BatchMatMul on wasm: transposed operands and batches of small products match the JavaScript backend', async () => {
  const { cpu, wasm } = await onBoth(() => [
    tf.matMul(seeded([12, 7], 5), seeded([9, 7], 6), false, true),
    tf.matMul(seeded([7, 12], 7), seeded([7, 9], 8), true, false),
    // Aᵀ·B on SIMD: 4-, 2- and 1-row tiles, rows in 3 chunks (scaled so sums of 150 terms stay near 1)
    tf.matMul(tf.mul(seeded([150, 7], 15), 0.25), tf.mul(seeded([150, 24], 16), 0.25), true, false),
    tf.matMul(seeded([6, 5, 7], 9), seeded([6, 7, 50], 10)), // batched, 50 columns: vector and scalar tails
    tf.matMul(seeded([6, 5, 7], 11), seeded([7, 16], 12)), // b broadcast over the batch
    tf.matMul(seeded([3, 4, 8], 13), seeded([3, 4, 8], 14), false, true),
  ]);
  expectClose(wasm, cpu, 1e-5);
});

test('embedding rows gathered and their gradients summed on wasm match the JavaScript backend, SIMD and scalar widths', async () => {
  const ids = [3, 0, 3, 9, 1, 3, 7];
  const { cpu, wasm } = await onBoth(() => [
    tf.gather(seeded([10, 8], 15), tf.tensor1d(ids, 'int32')),
    tf.gather(seeded([10, 3], 16), tf.tensor2d(ids.slice(0, 6), [2, 3], 'int32')),
    tf.unsortedSegmentSum(seeded([7, 8], 17), tf.tensor1d(ids, 'int32'), 10),
    tf.unsortedSegmentSum(seeded([7, 3], 18), tf.tensor1d(ids, 'int32'), 10),
    tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, tf.tensor1d(ids, 'int32')), seeded([7, 8], 19))))(seeded([10, 8], 20)),
  ]);
  expectClose(wasm, cpu, 1e-6);
  await useBackend('tfjs-wasm');
  expect(() => tf.tidy(() => tf.gather(seeded([10, 8], 21), tf.tensor1d([10], 'int32')))).toThrow(/not in \[0, 9\]/);
});

test('Identity and no-op Transpose share memory on wasm, and release it when the last user is disposed', async () => {
  await useBackend('tfjs-wasm');
  const buffers = () => (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
  const before = buffers();
  const x = seeded([64, 64], 22);
  const clone = tf.clone(x);
  const same = tf.transpose(x, [0, 1]);
  expect(buffers() - before).toBe(1);
  x.dispose();
  clone.dispose();
  expect(Array.from(same.dataSync())).toHaveLength(64 * 64);
  expect(buffers() - before).toBe(1);
  same.dispose();
  expect(buffers()).toBe(before);
});
