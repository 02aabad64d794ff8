import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ModelError } from '../core/errors.js';
import {
  ARTIFACT_FORMAT_VERSION,
  artifactFiles,
  artifactFromFiles,
  createModel,
  exportOnnx,
  loadArtifact,
  modelFromWeights,
  OnnxScorer,
  NEXTBUY_VERSION,
  saveArtifact,
  selectBackend,
  type ArtifactContents,
} from '../worker/model/index.js';
import { maxAbsDiff, syntheticBatch, tinySpec } from './helpers/model.js';

let dir: string;
let contents: ArtifactContents;

beforeAll(async () => {
  await selectBackend({ log: () => {} });
  dir = await mkdtemp(path.join(tmpdir(), 'nextbuy-artifact-'));
  const model = createModel(tinySpec('attention'));
  try {
    contents = {
      modelVersion: 'taobao-2017-12-02-attention-1',
      spec: model.spec,
      weights: model.getWeights(),
      onnx: exportOnnx(model),
      vocabulary: { item: ['<pad>', '<unk>', '4242'], event: ['<pad>', '<unk>', 'pv', 'buy'] },
      preprocessing: { maxLength: 12, lookbackDays: 30 },
      trainingWindow: { from: '2017-11-25', to: '2017-12-02' },
      metrics: { validationAuc: 0.81 },
    };
  } finally {
    model.dispose();
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('an artifact saved to a folder loads back whole, and travels as files', async () => {
  const folder = path.join(dir, 'round-trip');
  const manifest = await saveArtifact(folder, contents);
  expect(manifest.format).toBe('nextbuy-model');
  expect(manifest.formatVersion).toBe(ARTIFACT_FORMAT_VERSION);
  expect(manifest.nextbuyVersion).toBe(NEXTBUY_VERSION);

  const loaded = await loadArtifact(folder);
  expect(loaded.modelVersion).toBe(contents.modelVersion);
  expect(loaded.spec).toEqual(contents.spec);
  expect(loaded.weights).toEqual(contents.weights);
  expect(loaded.onnx).toEqual(contents.onnx);
  expect(loaded.vocabulary).toEqual(contents.vocabulary);
  expect(loaded.preprocessing).toEqual(contents.preprocessing);
  expect(loaded.trainingWindow).toEqual(contents.trainingWindow);
  expect(loaded.metrics).toEqual(contents.metrics);

  const files = await artifactFiles(folder);
  expect([...files.keys()].sort()).toEqual(['manifest.json', 'model.onnx', 'preprocessing.json', 'vocabulary.json', 'weights.f32']);
  expect(artifactFromFiles(files).weights).toEqual(contents.weights);
});

test('a loaded artifact scores like the model it was saved from, through tfjs and through its ONNX graph', async () => {
  const folder = path.join(dir, 'scores');
  const batch = syntheticBatch({ size: 64, maxLength: 12, seed: 4 });
  const original = createModel(tinySpec('lstm'));
  original.trainSteps(batch, { steps: 5, seed: 1 });
  const expected = original.predict(batch);
  await saveArtifact(folder, { ...contents, spec: original.spec, weights: original.getWeights(), onnx: exportOnnx(original) });
  original.dispose();
  const loaded = await loadArtifact(folder);
  const model = modelFromWeights(loaded.spec, loaded.weights);
  const scorer = await OnnxScorer.create(loaded.onnx!);
  try {
    expect(model.predict(batch)).toEqual(expected);
    expect(maxAbsDiff(await scorer.score(batch), expected)).toBeLessThanOrEqual(1e-5);
  } finally {
    model.dispose();
    await scorer.dispose();
  }
});

test('an artifact written in another format version is refused with who wrote it and what to do', async () => {
  const folder = path.join(dir, 'future');
  await saveArtifact(folder, contents);
  const file = path.join(folder, 'manifest.json');
  const manifest = JSON.parse(await readFile(file, 'utf8'));
  await writeFile(file, JSON.stringify({ ...manifest, formatVersion: ARTIFACT_FORMAT_VERSION + 1, nextbuyVersion: '9.0.0' }));
  const error = await loadArtifact(folder).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ModelError);
  expect((error as ModelError).code).toBe('MODEL');
  expect((error as Error).message).toMatch(/written by nextbuy 9\.0\.0 in artifact format 2/);
  expect((error as Error).message).toMatch(/reads format 1/);
  expect((error as Error).message).toMatch(/Upgrade .* or retrain/);

  await writeFile(file, JSON.stringify({ ...manifest, formatVersion: 0, nextbuyVersion: '0.0.1' }));
  await expect(loadArtifact(folder)).rejects.toThrow(/nextbuy 0\.0\.1 .*Retrain the model with this version/);
});

test('a damaged file, a missing manifest or a foreign folder is refused clearly', async () => {
  const folder = path.join(dir, 'damaged');
  await saveArtifact(folder, contents);
  const weights = await readFile(path.join(folder, 'weights.f32'));
  weights[5] = weights[5]! ^ 0xff;
  await writeFile(path.join(folder, 'weights.f32'), weights);
  await expect(loadArtifact(folder)).rejects.toThrow(/weights\.f32 does not match its checksum/);

  await expect(loadArtifact(path.join(dir, 'nowhere'))).rejects.toThrow(ModelError);
  const foreign = path.join(dir, 'foreign');
  await saveArtifact(foreign, contents);
  await writeFile(path.join(foreign, 'manifest.json'), JSON.stringify({ format: 'keras' }));
  await expect(loadArtifact(foreign)).rejects.toThrow(/not a nextbuy model artifact/);
  expect(() => artifactFromFiles(new Map())).toThrow(/no manifest\.json/);
});

test('weights that do not fit the spec are refused when saving', async () => {
  await expect(saveArtifact(path.join(dir, 'short'), { ...contents, weights: contents.weights.subarray(1) })).rejects.toThrow(/weights where its spec needs/);
});
