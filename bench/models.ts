/**
 * Model benchmark: training and scoring sequences per second per thread, for every runtime available here,
 * next to PyTorch running the same architecture on the same machine.
 *
 *   node --import tsx bench/models.ts [--seconds 3] [--architectures lstm,attention] [--products 20]
 *                                     [--no-pytorch] [--no-baseline] [--json out.json]
 *
 * Reference shape: item vocabulary 5,000 (plus a 6-token event column and 2 numeric features per event),
 * embedding 32, LSTM 64, dense 32, sequences of 50; batches of 256 for training, 1,024 for scoring.
 * Every runtime runs on one thread: tfjs-backend-wasm and the JavaScript backend are single-threaded,
 * ONNX Runtime runs with intraOpNumThreads = 1, PyTorch with torch.set_num_threads(1).
 *
 * PyTorch: the first python3 (or /usr/bin/python3) that imports torch; if none does and apt-get is there,
 * Debian's python3-torch is installed (`apt-get install -y --no-install-recommends python3-torch`, needs root);
 * otherwise its rows read 'not available'. The attention architecture scores every customer against
 * --products products; its figures count customers (each with all products) per second.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import type { ModelSpec } from '../proto/model-spec.js';
import type { SequenceBatch } from '../proto/shard-batch.js';
import { availableBackends, createModel, exportOnnx, OnnxScorer, useBackend, type TfjsRuntime } from '../worker/model/index.js';

const SHAPE = { vocab: 5000, events: 6, features: 2, embedding: 32, hidden: 64, dense: 32, length: 50, trainBatch: 256, scoreBatch: 1024 };
/** Per-thread reference figures quoted in the issue (sequences/s). */
const REFERENCE = {
  currentPytorch: { train: 3500, score: 14000, note: 'PyTorch with MKL and oneDNN' },
  debianPytorch: { train: 300, score: 870, note: "Debian's PyTorch 1.13" },
  tfjsWasmBefore: { train: 170, note: 'tfjs on wasm before this work' },
};
/** Goals: scoring at or above current PyTorch per thread; training within 3× of it. */
const GOAL = { score: REFERENCE.currentPytorch.score, train: REFERENCE.currentPytorch.train / 3 };

type Architecture = 'lstm' | 'attention';
interface Row {
  runtime: string;
  architecture: Architecture;
  train: number | null;
  score: number | null;
  note?: string;
}

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    architectures: { type: 'string', default: 'lstm,attention' },
    products: { type: 'string', default: '20' },
    'no-pytorch': { type: 'boolean', default: false },
    'no-baseline': { type: 'boolean', default: false },
    json: { type: 'string' },
    /** Internal: measure only the tfjs-layers baseline and print it as JSON (run in a child process). */
    'baseline-only': { type: 'boolean', default: false },
  },
});
const SECONDS = Number(args.seconds);
const PRODUCTS = Array.from({ length: Number(args.products) }, (_, i) => `p${i}`);
const ARCHITECTURES = args.architectures!.split(',') as Architecture[];

function spec(architecture: Architecture): ModelSpec {
  return {
    architecture,
    product: architecture === 'attention' ? null : PRODUCTS[0]!,
    products: PRODUCTS,
    vocabSizes: { item: SHAPE.vocab, event: SHAPE.events },
    featureNames: ['dt', 'age'],
    wideFeatures: [],
    maxLength: SHAPE.length,
    embeddingDim: SHAPE.embedding,
    hiddenUnits: SHAPE.hidden,
    denseUnits: SHAPE.dense,
    learningRate: 1e-3,
    batchSize: SHAPE.trainBatch,
    positiveWeight: 2,
    seed: 7,
  };
}

/** Full-length random histories (the reference shape has no padding to skip). */
function referenceBatch(size: number, seed: number): SequenceBatch {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const L = SHAPE.length;
  const item = Int32Array.from({ length: size * L }, () => 2 + Math.floor(rand() * (SHAPE.vocab - 2)));
  const event = Int32Array.from({ length: size * L }, () => 2 + Math.floor(rand() * (SHAPE.events - 2)));
  return {
    size,
    maxLength: L,
    customerIds: Array.from({ length: size }, (_, i) => `c${i}`),
    historyLength: new Int32Array(size).fill(L),
    tokens: { item, event },
    features: Float32Array.from({ length: size * L * SHAPE.features }, rand),
    featureNames: ['dt', 'age'],
    products: PRODUCTS,
    wide: new Float32Array(0),
    wideFeatures: [],
    labels: Int8Array.from({ length: size * PRODUCTS.length }, () => (rand() < 0.1 ? 1 : 0)),
    weight: new Float32Array(size).fill(1),
    split: new Int8Array(size),
    snapshot: new Int8Array(size),
  };
}

/** Runs `step` (after one warm-up run unless told not to) until SECONDS have passed and at least `minReps` ran; items/s. */
async function rate(items: number, step: () => unknown, minReps = 2, warmUp = true): Promise<number> {
  if (warmUp) await step();
  let reps = 0;
  const start = performance.now();
  while (reps < minReps || performance.now() - start < SECONDS * 1000) {
    await step();
    reps++;
  }
  return (reps * items) / ((performance.now() - start) / 1000);
}

async function tfjsRows(runtime: TfjsRuntime, architecture: Architecture): Promise<Row> {
  await useBackend(runtime);
  const model = createModel(spec(architecture));
  const train = referenceBatch(SHAPE.trainBatch, 1);
  const score = referenceBatch(SHAPE.scoreBatch, 2);
  try {
    // The plain JavaScript backend is two orders of magnitude slower: one timed run, no warm-up, is enough.
    const slow = runtime === 'tfjs-cpu';
    const trainRate = await rate(SHAPE.trainBatch, () => model.trainSteps(train, { steps: 1, seed: 1 }), slow ? 1 : 2, !slow);
    const scoreRate = await rate(SHAPE.scoreBatch, () => model.predict(score), slow ? 1 : 2, !slow);
    return { runtime, architecture, train: trainRate, score: scoreRate, note: slow ? 'one run, no warm-up' : undefined };
  } finally {
    model.dispose();
  }
}

async function onnxRow(architecture: Architecture, threads: number): Promise<Row> {
  await useBackend('tfjs-wasm');
  const model = createModel(spec(architecture));
  const scorer = await OnnxScorer.create(exportOnnx(model), { threads, device: 'cpu' });
  model.dispose();
  const score = referenceBatch(SHAPE.scoreBatch, 2);
  try {
    const scoreRate = await rate(SHAPE.scoreBatch, () => scorer.score(score));
    return { runtime: `${scorer.runtime} (${threads} thread${threads > 1 ? 's' : ''})`, architecture, train: null, score: scoreRate };
  } finally {
    await scorer.dispose();
  }
}

/**
 * tfjs's own Keras-style LSTM layer trained with model.trainOnBatch on wasm: once in a child process with
 * tfjs's stock kernels (plus the UnsortedSegmentSum it lacks) — where nextbuy started — and once here,
 * with nextbuy's kernels swapped in.
 */
async function baselines(): Promise<Row[]> {
  const script = fileURLToPath(import.meta.url);
  const child = spawnSync(process.execPath, [...process.execArgv, script, '--baseline-only', '--seconds', String(SECONDS)], {
    encoding: 'utf8',
    env: { ...process.env, NEXTBUY_WASM_KERNELS: 'stock' },
    timeout: 10 * 60_000,
  });
  const stock: Row = child.status === 0
    ? { ...(JSON.parse(child.stdout.trim().split('\n').at(-1)!) as Row), runtime: 'tfjs-layers LSTM, stock tfjs-wasm', note: "tfjs's Keras layer on tfjs's own kernels: the starting point" }
    : { runtime: 'tfjs-layers LSTM, stock tfjs-wasm', architecture: 'lstm', train: null, score: null, note: `failed: ${child.stderr.trim().split('\n').at(-1)}` };
  const ours = await keraslayersBaseline();
  return [stock, { ...ours, runtime: 'tfjs-layers LSTM, nextbuy kernels', note: "the same Keras layer with nextbuy's wasm kernels swapped in" }];
}

async function keraslayersBaseline(): Promise<Row> {
  await useBackend('tfjs-wasm');
  const L = SHAPE.length;
  const item = tf.input({ shape: [L], dtype: 'int32' });
  const event = tf.input({ shape: [L], dtype: 'int32' });
  const features = tf.input({ shape: [L, SHAPE.features] });
  const embedded = tf.layers
    .concatenate()
    .apply([
      tf.layers.embedding({ inputDim: SHAPE.vocab, outputDim: SHAPE.embedding }).apply(item) as tf.SymbolicTensor,
      tf.layers.embedding({ inputDim: SHAPE.events, outputDim: SHAPE.embedding }).apply(event) as tf.SymbolicTensor,
      features,
    ]) as tf.SymbolicTensor;
  const last = tf.layers.lstm({ units: SHAPE.hidden, recurrentActivation: 'sigmoid' }).apply(embedded) as tf.SymbolicTensor;
  const dense = tf.layers.dense({ units: SHAPE.dense, activation: 'relu' }).apply(last) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 1, activation: 'sigmoid' }).apply(dense) as tf.SymbolicTensor;
  const model = tf.model({ inputs: [item, event, features], outputs: out });
  model.compile({ optimizer: tf.train.adam(1e-3), loss: 'binaryCrossentropy' });
  const b = referenceBatch(SHAPE.trainBatch, 1);
  const xs = [
    tf.tensor2d(b.tokens.item!, [b.size, L], 'int32'),
    tf.tensor2d(b.tokens.event!, [b.size, L], 'int32'),
    tf.tensor3d(b.features, [b.size, L, SHAPE.features]),
  ];
  const ys = tf.tensor2d(Float32Array.from({ length: b.size }, (_, i) => b.labels![i * PRODUCTS.length]!), [b.size, 1]);
  try {
    const train = await rate(SHAPE.trainBatch, () => model.trainOnBatch(xs, ys), 1);
    return { runtime: 'tfjs-layers LSTM', architecture: 'lstm', train, score: null };
  } finally {
    tf.dispose([...xs, ys]);
    model.dispose();
  }
}

// ---- PyTorch --------------------------------------------------------------------------------------

function torchPython(): { python: string; log: string[] } | null {
  const log: string[] = [];
  const candidates = [...new Set([process.env.PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p))];
  const importsTorch = (python: string) => spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  for (const python of candidates) if (importsTorch(python)) return { python, log };
  log.push(`no python3 here imports torch (tried ${candidates.join(', ')})`);
  const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!hasApt) {
    log.push('apt-get is not available: cannot install python3-torch');
    return null;
  }
  for (const attempt of [['install', '-y', '--no-install-recommends', 'python3-torch'], ['update'], ['install', '-y', '--no-install-recommends', 'python3-torch']]) {
    log.push(`running apt-get ${attempt.join(' ')} (this takes a few minutes)`);
    console.error(`bench: ${log.at(-1)}`);
    const r = spawnSync('apt-get', attempt, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 20 * 60_000 });
    if (r.status !== 0) log.push(`apt-get ${attempt[0]} failed: ${String(r.stderr ?? '').trim().split('\n').at(-1) ?? `exit ${r.status}`}`);
    if (attempt[0] === 'install' && r.status === 0) break;
  }
  return importsTorch('/usr/bin/python3') ? { python: '/usr/bin/python3', log } : null;
}

function pytorchRow(python: string, architecture: Architecture): Row {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'pytorch_reference.py');
  const out = execFileSync(
    python,
    [
      script,
      '--architecture', architecture,
      '--vocab', String(SHAPE.vocab), '--events', String(SHAPE.events), '--features', String(SHAPE.features),
      '--embedding', String(SHAPE.embedding), '--hidden', String(SHAPE.hidden), '--dense', String(SHAPE.dense),
      '--length', String(SHAPE.length), '--products', String(PRODUCTS.length),
      '--train-batch', String(SHAPE.trainBatch), '--score-batch', String(SHAPE.scoreBatch),
      '--seconds', String(SECONDS), '--threads', '1',
    ],
    { encoding: 'utf8', timeout: 30 * 60_000 },
  );
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as { torch: string; threads: number; mkldnn: boolean; train_seq_per_s: number; score_seq_per_s: number };
  return { runtime: `PyTorch ${r.torch} (${r.threads} thread)`, architecture, train: r.train_seq_per_s, score: r.score_seq_per_s, note: `oneDNN ${r.mkldnn ? 'on' : 'off'}` };
}

// ---- report ---------------------------------------------------------------------------------------

const fmt = (v: number | null) => (v === null ? '—' : Math.round(v).toLocaleString('en-US'));
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

async function main(): Promise<void> {
  const cpus = os.cpus();
  const machine = `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, ${os.platform()} ${os.arch()}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`;
  console.log(`machine: ${machine}`);
  console.log(
    `shape: vocabulary ${SHAPE.vocab} (+ event ${SHAPE.events}, ${SHAPE.features} features), embedding ${SHAPE.embedding}, LSTM ${SHAPE.hidden}, dense ${SHAPE.dense}, length ${SHAPE.length}; ` +
      `train batch ${SHAPE.trainBatch}, score batch ${SHAPE.scoreBatch}; attention: ${PRODUCTS.length} products; ${SECONDS}s per figure; sequences/s on one thread`,
  );
  const rows: Row[] = [];
  const runtimes = await availableBackends();
  console.log(`tfjs runtimes available: ${runtimes.join(', ')}`);
  for (const architecture of ARCHITECTURES) {
    for (const runtime of runtimes) rows.push(await tfjsRows(runtime, architecture));
    rows.push(await onnxRow(architecture, 1));
    if (cpus.length > 1) rows.push({ ...(await onnxRow(architecture, cpus.length)), note: 'all cores, for scale; not per thread' });
  }
  if (!args['no-baseline'] && ARCHITECTURES.includes('lstm')) rows.push(...(await baselines()));
  const pytorchLog: string[] = [];
  if (!args['no-pytorch']) {
    const found = torchPython();
    pytorchLog.push(...(found?.log ?? []));
    for (const architecture of ARCHITECTURES) {
      if (!found) {
        rows.push({ runtime: 'PyTorch', architecture, train: null, score: null, note: 'not available' });
        continue;
      }
      try {
        rows.push(pytorchRow(found.python, architecture));
      } catch (e) {
        rows.push({ runtime: 'PyTorch', architecture, train: null, score: null, note: `failed: ${String((e as Error).message).split('\n')[0]}` });
      }
    }
  }

  console.log('');
  console.log(`${'runtime'.padEnd(40)}${'arch'.padEnd(11)}${'train seq/s'.padStart(13)}${'score seq/s'.padStart(13)}  note`);
  for (const r of rows) {
    console.log(`${r.runtime.padEnd(40)}${r.architecture.padEnd(11)}${fmt(r.train).padStart(13)}${fmt(r.score).padStart(13)}  ${r.note ?? ''}`);
  }
  for (const line of pytorchLog) console.log(`pytorch: ${line}`);

  console.log('');
  for (const architecture of ARCHITECTURES) {
    const mine = rows.filter((r) => r.architecture === architecture && !r.runtime.startsWith('PyTorch') && !r.runtime.startsWith('tfjs-layers') && !r.note?.startsWith('all cores'));
    const bestTrain = mine.filter((r) => r.train !== null).sort((a, b) => b.train! - a.train!)[0];
    const bestScore = mine.filter((r) => r.score !== null).sort((a, b) => b.score! - a.score!)[0];
    const torch = rows.find((r) => r.architecture === architecture && r.runtime.startsWith('PyTorch') && r.train !== null);
    console.log(`${architecture}:`);
    if (bestTrain) {
      const t = bestTrain.train!;
      console.log(
        `  training  ${fmt(t)} seq/s (${bestTrain.runtime}): ${ratio(t, REFERENCE.currentPytorch.train)} of current PyTorch's ${fmt(REFERENCE.currentPytorch.train)}` +
          ` (goal ≥ ${fmt(GOAL.train)}, within 3×: ${t >= GOAL.train ? 'met' : 'missed'}); ${ratio(t, REFERENCE.debianPytorch.train)} of Debian PyTorch's quoted ${fmt(REFERENCE.debianPytorch.train)}` +
          (architecture === 'lstm' ? `; ${ratio(t, REFERENCE.tfjsWasmBefore.train)} of tfjs-on-wasm's quoted ${REFERENCE.tfjsWasmBefore.train}` : '') +
          (torch ? `; ${ratio(t, torch.train!)} of ${torch.runtime} measured here` : ''),
      );
    }
    if (bestScore) {
      const s = bestScore.score!;
      console.log(
        `  scoring   ${fmt(s)} seq/s (${bestScore.runtime}): ${ratio(s, REFERENCE.currentPytorch.score)} of current PyTorch's ${fmt(REFERENCE.currentPytorch.score)}` +
          ` (goal ≥ ${fmt(GOAL.score)}: ${s >= GOAL.score ? 'met' : 'missed'}); ${ratio(s, REFERENCE.debianPytorch.score)} of Debian PyTorch's quoted ${fmt(REFERENCE.debianPytorch.score)}` +
          (torch ? `; ${ratio(s, torch.score!)} of ${torch.runtime} measured here` : ''),
      );
    }
  }
  if (args.json) writeFileSync(args.json, JSON.stringify({ machine, shape: SHAPE, products: PRODUCTS.length, seconds: SECONDS, rows, pytorchLog }, null, 2));
}

if (args['baseline-only']) console.log(JSON.stringify(await keraslayersBaseline()));
else await main();
