import { describe, expect, test } from 'vitest';
import { buildReport, type ProductEvaluationInput } from '../coordinator/evaluate/index.js';
import { evaluationSummary, type RunSummary } from '../coordinator/pipeline/index.js';
import { formatSummary } from '../jobs/summary.js';
import { syntheticSet } from './helpers/evaluate.js';

function product(name: string, seed: number, keepPositives?: number): ProductEvaluationInput {
  const s = syntheticSet(1200, seed, { decimals: 3 });
  let kept = 0;
  const labels = keepPositives === undefined ? s.labels : s.labels.map((y) => (y === 1 && kept++ < keepPositives ? 1 : 0));
  return {
    product: name,
    labels,
    models: [{ name: `lstm.${name}`, modelVersion: `lstm.${name}-v1`, scores: s.second }],
    ensemble: { spec: { method: 'mean', models: [`lstm.${name}`], weights: [1] }, scores: s.second },
    baselines: [
      { name: 'recency-frequency', scores: s.noise },
      { name: 'logistic-counts', scores: s.informative },
    ],
    positives: { training: 200, validation: 40 },
  };
}

describe('the run summary', () => {
  test('shows every product with its AUCs and 95 % intervals, the verdict against the best baseline and the too-few-positives warnings', () => {
    const report = buildReport({
      header: { account: 'a', date: '2024-01-02', asOf: '2024-01-02', labelWindow: { from: '2024-01-02', to: '2024-01-03' }, runId: 'r', modelVersions: {} },
      products: [product('any', 3), product('A', 5, 3)],
    });
    const evaluation = evaluationSummary(report, { windowLabel: 'on the held-out label window', kind: 'label-window', reportHtml: 'r.html', reportJson: 'r.json' });
    const run: RunSummary = {
      account: 'a', date: '2024-01-02', runId: 'r', runDir: 'd', tasks: ['evaluate'],
      preprocess: null, models: null, evaluation, publish: null, workers: null, timings: {}, totalMs: 1,
    };
    const lines = formatSummary(run).split('\n');
    if (process.env.SHOW_SUMMARY) console.log(lines.join('\n'));
    const at = (product: string) => lines.findIndex((l) => l.startsWith(`  ${product.padEnd(12)} `));
    for (const p of report.products) {
      const row = lines[at(p.product)]!;
      for (const e of p.entries.filter((x) => x.name === 'ensemble' || x.kind === 'baseline')) {
        expect(row).toContain(`${e.name} ${e.metrics.auc!.toFixed(3)} (${e.aucCi!.lower.toFixed(3)}..${e.aucCi!.upper.toFixed(3)})`);
      }
      expect(lines[at(p.product) + 1]).toBe(`  ${''.padEnd(12)} verdict: ${p.verdict.text}`);
    }
    expect(report.products[0]!.verdict.outcome).toBe('loses'); // the weaker model against the informative baseline
    expect(lines[at('A') + 2]).toBe(`  ${''.padEnd(12)} warning: too few positives, its figures are noise: 3 positives in the evaluation window (fewer than 10)`);
    expect(lines.filter((l) => l.includes('warning:'))).toHaveLength(1);
  });
});
