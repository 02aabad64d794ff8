/**
 * A night's scoring end to end: N customers × 3 products, shards → worker processes (gRPC, ONNX Runtime)
 * → per-product ensemble (a per-product LSTM and the product-keyed attention LSTM) → Parquet prediction
 * table committed with manifests. Next to it, in the same run: bare ONNX Runtime scoring the same
 * sequences with the same models in one process, with as many threads as there are workers.
 *
 *   node --import tsx bench/nightly-scoring.ts [--customers 1000000] [--workers 2]
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ensembledScores } from '../coordinator/pipeline/evaluate-stage.js';
import { writeModelArtifact, loadArtifactFiles } from '../coordinator/pipeline/artifacts.js';
import { runFolder } from '../coordinator/pipeline/run-folder.js';
import { writeFileDurably } from '../core/durable-fs.js';
import type { ModelsFile } from '../coordinator/pipeline/state.js';
import { startWorkers } from '../coordinator/pipeline/workers.js';
import type { PreprocessResult } from '../coordinator/preprocess/index.js';
import { publishPredictions } from '../coordinator/publish/index.js';
import { compileJob } from '../jobs/job-file.js';
import type { ModelSpec } from '../proto/model-spec.js';
import { decodeBatches, toSequenceBatch } from '../proto/shard-batch.js';
import { initialWeights, OnnxScorer, exportOnnx } from '../worker/model/index.js';
import { writeSyntheticShards } from '../test/helpers/synthetic-shards.js';
import { machineLine, peakRssMiB } from './machine.js';

const { values } = parseArgs({ options: { customers: { type: 'string', default: '1000000' }, workers: { type: 'string', default: '2' } } });
const customers = Number(values.customers);
const workers = Number(values.workers);
const PRODUCTS = ['any', 'c3', 'c7'];
const DATE = '2020-01-01';

const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-bench-score-'));
const job = compileJob(
  {
    account: 'bench',
    input: { path: 'none.parquet' },
    columns: { customer: 'c', time: 't', eventType: 'e', item: 'i', category: 'k' },
    events: { types: ['a', 'b', 'c', 'd'], purchase: 'd' },
    label: { horizonDays: 2 },
    cluster: { workers, heartbeatTimeout: '60s' },
    output: { dir: path.join(dir, 'out') },
  },
  path.join(dir, 'job.yaml'),
);
console.log(`nightly scoring benchmark · ${machineLine()}`);
let t = Date.now();
const data = await writeSyntheticShards({ dir: path.join(dir, 'shards'), customers, shards: 32, maxLength: 50, itemVocab: 5_000, categoryVocab: 200, products: PRODUCTS, labelled: false, batchRows: 4096 });
console.log(`${customers.toLocaleString('en-US')} customers × ${PRODUCTS.length} products, sequences of up to 50 events, in 32 shards (written in ${((Date.now() - t) / 1000).toFixed(1)} s)`);

// The job file's default model shape: embedding 16, LSTM 32, dense 16; untrained weights score at the same speed.
const base: Omit<ModelSpec, 'architecture' | 'product'> = {
  products: PRODUCTS, vocabSizes: data.vocabSizes, featureNames: ['dt', 'age'], wideFeatures: [], maxLength: 50,
  embeddingDim: 16, hiddenUnits: 32, denseUnits: 16, learningRate: 0.005, batchSize: 128, positiveWeight: 1, seed: 1,
};
const specs: { name: string; spec: ModelSpec }[] = [
  ...PRODUCTS.map((p) => ({ name: `lstm.${p}`, spec: { ...base, architecture: 'lstm' as const, product: p } })),
  { name: 'attention', spec: { ...base, architecture: 'attention', product: null } },
];
const models: ModelsFile = { runId: 'bench', trainedAsOf: DATE, products: PRODUCTS, models: [] };
for (const { name, spec } of specs) {
  const modelDir = path.join(dir, 'models', name);
  await writeModelArtifact(modelDir, { modelVersion: `${name}-bench`, spec, weights: initialWeights(spec), vocabulary: {}, preprocessing: {}, trainingWindow: {}, metrics: {} });
  models.models.push({ name, architecture: spec.architecture, product: spec.product, modelVersion: `${name}-bench`, dir: modelDir, bestEpoch: 1, validationAuc: 0.5, history: [], search: null });
}
const predictions = customers * PRODUCTS.length;

// Baseline: bare ONNX Runtime in this process over the same shard files.
t = Date.now();
const scorers = await Promise.all(specs.map(({ spec }) => OnnxScorer.create(exportOnnx({ spec, getWeights: () => initialWeights(spec) }), { threads: workers })));
let scored = 0;
for (const shard of data.shards) {
  for (const batch of decodeBatches(await readFile(shard.file)).map(toSequenceBatch)) {
    for (let m = 0; m < specs.length; m++) await scorers[m]!.score(batch, specs[m]!.spec.architecture === 'attention' ? PRODUCTS : undefined);
    scored += batch.size;
  }
}
const bareSeconds = (Date.now() - t) / 1000;
const bareRate = (scored * PRODUCTS.length) / bareSeconds;

// End to end: the pipeline's own score and publish steps.
const folder = runFolder(job, DATE);
const pre = { score: { shards: data.shards } } as unknown as PreprocessResult;
const ensembles = { products: Object.fromEntries(PRODUCTS.map((p) => [p, { method: 'mean' as const, requested: 'mean' as const, models: [`lstm.${p}`, 'attention'], weights: [0.5, 0.5], modelVersions: [`lstm.${p}-bench`, 'attention-bench'] }])) };
t = Date.now();
const session = await startWorkers({ job, env: 'local', runId: 'bench', workers });
const startSeconds = (Date.now() - t) / 1000;
t = Date.now();
try {
  for (const m of models.models) session.loadModel(m.modelVersion, await loadArtifactFiles(m.dir));
  await session.scoreShards({
    shards: data.shards,
    modelVersions: models.models.map((m) => m.modelVersion),
    products: PRODUCTS,
    onResult: (id, arrow) => writeFileDurably(path.join(folder.scoresDir, `${id}.arrow`), arrow),
  });
} finally {
  await session.close();
}
const scoreSeconds = (Date.now() - t) / 1000;
t = Date.now();
const { rows, perProduct } = await ensembledScores(folder, pre, models, ensembles as never);
const ensembleSeconds = (Date.now() - t) / 1000;
t = Date.now();
await publishPredictions({
  outDir: folder.outDir, account: 'bench', date: DATE, runId: 'bench', scoredAt: `${DATE}T00:00:00.000Z`, actions: job.actions,
  inputWindow: { from: DATE, to: DATE },
  products: perProduct.map((p) => ({ product: p.product, customerIds: rows.customerIds, scores: p.ensemble.scores, modelVersions: p.models.map((m) => m.modelVersion) })),
});
const publishSeconds = (Date.now() - t) / 1000;
const e2eSeconds = scoreSeconds + ensembleSeconds + publishSeconds;
const e2eRate = predictions / e2eSeconds;

const f = (x: number) => Math.round(x).toLocaleString('en-US');
console.log(`bare ONNX Runtime, 1 process, ${workers} threads: ${f(bareRate)} predictions/s (${bareSeconds.toFixed(1)} s; 4 models: 3 LSTMs + attention × 3 products)`);
console.log(`end to end, ${workers} workers: ${f(e2eRate)} predictions/s (${e2eSeconds.toFixed(1)} s = score ${scoreSeconds.toFixed(1)} s + ensemble ${ensembleSeconds.toFixed(1)} s + publish ${publishSeconds.toFixed(1)} s; worker start ${startSeconds.toFixed(1)} s not counted)`);
console.log(`ratio end to end / bare: ${((100 * e2eRate) / bareRate).toFixed(0)} % (goal ≥ 70 %) · coordinator peak RSS ${peakRssMiB().toFixed(0)} MiB`);
await rm(dir, { recursive: true, force: true });
