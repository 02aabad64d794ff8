/**
 * How long the end of a night takes: ensemble, evaluation report and the exactly-once publish of the
 * prediction table, at retail scale (default 1.5 M customers × 4 products), on seeded synthetic scores.
 *
 * CLI: npx tsx bench/publish.ts [--customers 1500000] [--products 4] [--seed 7] [--threads N] [--out DIR]
 * Prints one line per step (wall and CPU seconds, rows/s) and the machine it ran on. No assertion: a benchmark, not a test.
 */
import { DuckDBInstance } from '@duckdb/node-api';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { applyEnsemble, fitEnsemble } from '../coordinator/ensemble/index.js';
import { buildReport, computeMetrics, writeReport } from '../coordinator/evaluate/index.js';
import {
  committedPartitions,
  exportAudiences,
  exportCsv,
  loadPredictionsIntoDuckDB,
  publishPredictions,
  type ProductPredictions,
} from '../coordinator/publish/index.js';

const { values } = parseArgs({
  options: {
    customers: { type: 'string', default: '1500000' },
    products: { type: 'string', default: '4' },
    seed: { type: 'string', default: '7' },
    threads: { type: 'string' },
    out: { type: 'string' },
  },
});
const customers = Number(values.customers);
const productCount = Number(values.products);
const threads = values.threads === undefined ? undefined : Number(values.threads);

function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Labels from a latent propensity; two models that see it through noise, like an LSTM and an attention model. */
function synthetic(n: number, seed: number) {
  const random = seeded(seed);
  const normal = () => Math.sqrt(-2 * Math.log(Math.max(random(), 1e-12))) * Math.cos(2 * Math.PI * random());
  const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
  const labels = new Int8Array(n);
  const lstm = new Float32Array(n);
  const attention = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const latent = normal();
    labels[i] = random() < sigmoid(-4 + 1.5 * latent) ? 1 : 0;
    lstm[i] = sigmoid(-4 + 1.5 * (latent + 0.6 * normal()));
    attention[i] = sigmoid(-4 + 1.2 * (latent + 0.9 * normal()));
  }
  return { labels, lstm, attention };
}

/** Wall time, and CPU time of this process (DuckDB's threads included): the steadier figure on a busy machine. */
async function step<T>(name: string, rows: number, fn: () => Promise<T> | T): Promise<T> {
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const result = await fn();
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  console.log(
    `${name.padEnd(46)} ${seconds.toFixed(2).padStart(7)} s wall ${cpuSeconds.toFixed(2).padStart(7)} s cpu  ${Math.round(rows / seconds)
      .toLocaleString('en-US')
      .padStart(11)} rows/s`,
  );
  return result;
}

const cpu = os.cpus();
console.log(
  `machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, ${os.platform()} ${os.arch()}`,
);
console.log(`workload: ${customers.toLocaleString('en-US')} customers × ${productCount} products, seed ${values.seed}${threads ? `, DuckDB threads ${threads}` : ''}`);

const out = values.out ?? (await mkdtemp(path.join(os.tmpdir(), 'nextbuy-bench-publish-')));
try {
  const customerIds = Array.from({ length: customers }, (_, i) => `c${(i * 2654435761) % 4294967291}`);
  const validation = synthetic(customers, Number(values.seed));
  const night = synthetic(customers, Number(values.seed) + 1);
  const modelsOf = (s: typeof night) => [
    { name: 'lstm', scores: s.lstm },
    { name: 'attention', scores: s.attention },
  ];

  const spec = await step('ensemble: fit weights (validation)', customers, () => fitEnsemble('fitted', { labels: validation.labels, models: modelsOf(validation) }));
  const ensemble = await step('ensemble: apply', customers, () => applyEnsemble(spec, modelsOf(night)));
  await step('evaluate: metrics for one score set', customers, () => computeMetrics(night.labels, ensemble));
  const report = await step('evaluate: report (2 models + ensemble) × 1', customers * 3, () =>
    buildReport({
      header: {
        account: 'bench',
        date: '2026-10-30',
        asOf: '2026-10-30',
        labelWindow: { from: '2026-10-30', to: '2026-11-01' },
        runId: 'bench',
        modelVersions: { lstm: 'lstm-v1', attention: 'attention-v1' },
      },
      products: [
        {
          product: 'any',
          labels: night.labels,
          models: modelsOf(night).map((m) => ({ ...m, modelVersion: `${m.name}-v1` })),
          ensemble: { spec, scores: ensemble },
          baselines: [],
        },
      ],
    }),
  );
  await step('evaluate: write HTML + JSON', 1, () => writeReport(path.join(out, 'report'), report));

  const random = seeded(Number(values.seed) + 2);
  const products: ProductPredictions[] = Array.from({ length: productCount }, (_, k) => ({
    product: k === 0 ? 'any' : `cat-${k}`,
    customerIds,
    scores: k === 0 ? ensemble : Float32Array.from(ensemble, (s) => Math.min(1, s * (0.5 + random()))),
    modelVersions: ['lstm-v1', 'attention-v1'],
    ensemble: spec,
  }));
  const options = {
    outDir: out,
    account: 'bench',
    date: '2026-10-30',
    runId: 'bench-20261030',
    scoredAt: '2026-10-31T02:00:00Z',
    actions: [
      { name: 'in_store', minScore: 0.4 },
      { name: 'sms', minScore: 0.2 },
    ],
    inputWindow: { from: '2026-10-01', to: '2026-10-30' },
    products,
    ...(threads ? { threads } : {}),
  };
  const total = customers * productCount;
  await step('publish: commit all partitions (first run)', total, () => publishPredictions(options));
  await step('publish: rerun replacing them', total, () => publishPredictions(options));
  await step('read: committed partitions, checksums verified', total, () => committedPartitions(out, 'bench', '2026-10-30'));
  await step('read: load into DuckDB', total, async () => {
    const instance = await DuckDBInstance.create(':memory:');
    try {
      const connection = await instance.connect();
      await loadPredictionsIntoDuckDB(connection, out, 'bench', '2026-10-30', 'predictions');
      connection.closeSync();
    } finally {
      instance.closeSync();
    }
  });
  await step('export: CSV', total, () => exportCsv({ outDir: out, account: 'bench', date: '2026-10-30' }));
  await step('export: audiences (CSV + Parquet)', total, () => exportAudiences({ outDir: out, account: 'bench', date: '2026-10-30' }));
} finally {
  if (values.out === undefined) await rm(out, { recursive: true, force: true });
}
