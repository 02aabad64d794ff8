/**
 * GPU workers score with ONNX Runtime's CUDA provider when asked (NEXTBUY_ONNX_DEVICE=cuda, which the
 * launcher sets on GPU pods) and fall back to the CPU with a warning where CUDA cannot run. This machine
 * has no GPU and the CPU image's onnxruntime-node has no CUDA provider: the fallback path is what runs
 * here (the CUDA path needs the GPU image on a GPU node).
 */
import { beforeAll, expect, test } from 'vitest';
import { UsageError } from '../core/errors.js';
import { createModelEngine } from '../worker/model-engine.js';
import { artifactToFiles, createModel, exportOnnx, OnnxScorer, onnxRuntimes, selectBackend } from '../worker/model/index.js';
import { maxAbsDiff, syntheticBatch, tinySpec } from './helpers/model.js';

beforeAll(async () => {
  await selectBackend({ log: () => {} });
});

const data = syntheticBatch({ size: 64, maxLength: 12, seed: 5 });

test('asked for CUDA where it cannot run, the scorer says why, runs on the CPU and scores the same', async () => {
  expect(onnxRuntimes()).toEqual(['onnxruntime-cpu']); // the premise: no CUDA provider or GPU here
  const model = createModel(tinySpec('lstm'));
  const bytes = exportOnnx(model);
  const [cuda, cpu] = [await OnnxScorer.create(bytes, { device: 'cuda' }), await OnnxScorer.create(bytes, { device: 'cpu' })];
  try {
    expect(cuda.runtime).toBe('onnxruntime-cpu');
    expect(cuda.fellBack).toBe(true);
    expect(cuda.note).toMatch(/CUDA not used: (this image has no ONNX Runtime CUDA provider|no NVIDIA GPU is visible)/);
    expect(cpu.fellBack).toBe(false);
    expect(maxAbsDiff(await cuda.score(data), await cpu.score(data))).toBe(0);
  } finally {
    await cuda.dispose();
    await cpu.dispose();
    model.dispose();
  }
});

test('a worker engine asked for CUDA by NEXTBUY_ONNX_DEVICE logs which provider scores, and warns when it is the CPU', async () => {
  const model = createModel(tinySpec('lstm'));
  const files = artifactToFiles({ modelVersion: 'v1', spec: model.spec, weights: model.getWeights(), onnx: exportOnnx(model), vocabulary: null, preprocessing: null, trainingWindow: {}, metrics: {} });
  const lines: string[] = [];
  const saved = process.env.NEXTBUY_ONNX_DEVICE;
  process.env.NEXTBUY_ONNX_DEVICE = 'cuda';
  try {
    const engine = createModelEngine({ log: (l) => lines.push(l) });
    const loaded = await engine.loadModel('v1', files);
    expect(loaded.runtime).toBe('onnxruntime-cpu');
    expect(lines).toContainEqual(expect.stringMatching(/model v1 scores with onnxruntime-cpu \(warning: CUDA was asked for and the CPU scores instead: .*CUDA not used/));

    lines.length = 0;
    await createModelEngine({ log: (l) => lines.push(l), onnxDevice: 'cpu' }).loadModel('v1', files);
    expect(lines).toEqual([expect.stringMatching(/^nextbuy worker: model v1 scores with onnxruntime-cpu \(CPU, 1 thread\(s\); CPU requested\)$/)]);

    process.env.NEXTBUY_ONNX_DEVICE = 'gpu';
    expect(() => createModelEngine()).toThrow(UsageError);
  } finally {
    if (saved === undefined) delete process.env.NEXTBUY_ONNX_DEVICE;
    else process.env.NEXTBUY_ONNX_DEVICE = saved;
    model.dispose();
  }
});
