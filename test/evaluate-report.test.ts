import { readFile } from 'node:fs/promises';
import { describe, expect, test } from 'vitest';
import { applyEnsemble, fitEnsemble } from '../coordinator/ensemble/index.js';
import {
  buildReport,
  METRIC_COLUMNS,
  writeReport,
  type EvaluationReport,
  type ProductEvaluationInput,
  type ReportInput,
} from '../coordinator/evaluate/index.js';
import { bruteBrier, bruteLogLoss, pairCountAuc, syntheticSet } from './helpers/evaluate.js';
import { withTempDir } from './helpers/publish.js';

function productInput(product: string, seed: number, method: 'mean' | 'fitted'): ProductEvaluationInput {
  const validation = syntheticSet(1500, seed, { decimals: 3 });
  const later = syntheticSet(1500, seed + 1, { decimals: 3 });
  const models = (s: typeof later) => [
    { name: 'lstm', scores: s.informative },
    { name: 'attention', scores: s.second },
  ];
  const spec = fitEnsemble(method, { labels: validation.labels, models: models(validation) });
  return {
    product,
    labels: later.labels,
    models: models(later).map((m) => ({ ...m, modelVersion: `${m.name}-${product}-v3` })),
    ensemble: { spec, scores: applyEnsemble(spec, models(later)) },
    baselines: [
      { name: 'recency-frequency', scores: Float32Array.from(later.second, (s) => Math.round(s * 10) / 10), note: 'ranking score' },
      { name: 'logistic-counts', scores: later.noise },
    ],
  };
}

function reportInput(): ReportInput {
  return {
    header: {
      account: 'taobao',
      date: '2017-12-02',
      asOf: '2017-12-02T00:00:00Z',
      labelWindow: { from: '2017-12-02', to: '2017-12-04' },
      trainingWindow: { from: '2017-11-25', to: '2017-11-30' },
      runId: 'taobao-20171202-0123456789',
      modelVersions: { lstm: 'lstm-v3', attention: 'attention-v3' },
    },
    stats: { customers: 987654, rejectedRows: 35, window: { from: '2017-11-25', to: '2017-12-02' }, note: '<not html>' },
    products: [productInput('any', 41, 'fitted'), productInput('cat-4756105', 43, 'mean')],
  };
}

describe('evaluation report', () => {
  test('covers every model, the ensemble and both baselines per product, with metrics matching an independent computation', () => {
    const input = reportInput();
    const report = buildReport(input);
    expect(report.products.map((p) => p.product)).toEqual(['any', 'cat-4756105']);
    report.products.forEach((p, k) => {
      const source = input.products[k]!;
      expect(p.entries.map((e) => [e.name, e.kind])).toEqual([
        ['lstm', 'model'],
        ['attention', 'model'],
        ['ensemble', 'ensemble'],
        ['recency-frequency', 'baseline'],
        ['logistic-counts', 'baseline'],
      ]);
      const scoresOf = [source.models[0]!.scores, source.models[1]!.scores, source.ensemble!.scores, source.baselines[0]!.scores, source.baselines[1]!.scores];
      p.entries.forEach((e, i) => {
        expect(e.metrics.auc!).toBeCloseTo(pairCountAuc(source.labels, scoresOf[i]!), 12);
        expect(e.metrics.brier).toBeCloseTo(bruteBrier(source.labels, scoresOf[i]!), 12);
        expect(e.metrics.logLoss).toBeCloseTo(bruteLogLoss(source.labels, scoresOf[i]!, 1e-7), 12);
      });
      expect(p.ensemble).toEqual(source.ensemble!.spec);
      const best = p.entries.reduce((a, b) => (b.metrics.auc! > a.metrics.auc! ? b : a));
      expect(p.bestByAuc).toBe(best.name);
    });
    expect(report.products[0]!.ensemble!.method).toBe('fitted');
  });

  test('the HTML is self-contained with ROC, gains and reliability charts, and the JSON carries the same figures', async () => {
    await withTempDir(async (dir) => {
      const report = buildReport(reportInput());
      const written = await writeReport(dir, report);
      const html = await readFile(written.html, 'utf8');
      const json = JSON.parse(await readFile(written.json, 'utf8')) as EvaluationReport;

      expect(json).toEqual(JSON.parse(JSON.stringify(report)));
      const embedded = /<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(html)![1]!;
      expect(JSON.parse(embedded)).toEqual(json);

      for (const kind of ['roc', 'gains', 'calibration']) {
        expect(html.match(new RegExp(`<svg class="chart ${kind}"`, 'g'))).toHaveLength(2);
      }
      // One line per entry in each chart.
      expect(html.match(/<polyline class="series"/g)).toHaveLength(2 * 3 * 5);
      // Nothing fetched from elsewhere: no scripts with src, no stylesheets, no URLs other than the SVG namespace.
      expect(html).not.toMatch(/<script[^>]+src=|<link|<img|url\(/);
      expect(html.replaceAll('http://www.w3.org/2000/svg', '')).not.toMatch(/https?:/);

      // The table shows the JSON's numbers.
      for (const [p, product] of json.products.entries()) {
        const section = html.slice(html.indexOf(`id="product-${p}"`), html.indexOf('</section>', html.indexOf(`id="product-${p}"`)));
        for (const entry of product.entries) {
          const row = new RegExp(`<tr data-entry="${entry.name}"[^>]*>(.*?)</tr>`, 's').exec(section)![1]!;
          for (const [key] of METRIC_COLUMNS) {
            const cell = new RegExp(`data-metric="${key}">([^<]*)<`).exec(row)![1];
            const value = entry.metrics[key];
            expect(cell).toBe(value === null ? '—' : value.toFixed(4));
          }
        }
      }
    });
  });

  test('shows the run header and the stats, escaping what it did not write', async () => {
    await withTempDir(async (dir) => {
      const input = reportInput();
      input.products[0]!.models[0]!.name = 'lstm<b>';
      const { html } = await writeReport(dir, buildReport(input));
      const text = await readFile(html, 'utf8');
      for (const shown of ['taobao-20171202-0123456789', '2017-12-02 → 2017-12-04', '2017-11-25 → 2017-11-30', 'lstm-v3', 'attention-v3', '987,654']) {
        expect(text).toContain(shown);
      }
      expect(text).toContain('&lt;not html&gt;');
      expect(text).toContain('lstm&lt;b&gt;');
      expect(text).not.toContain('lstm<b>');
      expect(text).toContain('{&quot;from&quot;:&quot;2017-11-25&quot;,&quot;to&quot;:&quot;2017-12-02&quot;}');
    });
  });

  test('the same inputs give the same report bytes', async () => {
    await withTempDir(async (dir) => {
      const first = await writeReport(`${dir}/a`, buildReport(reportInput()));
      const second = await writeReport(`${dir}/b`, buildReport(reportInput()));
      expect(await readFile(second.html, 'utf8')).toBe(await readFile(first.html, 'utf8'));
      expect(await readFile(second.json, 'utf8')).toBe(await readFile(first.json, 'utf8'));
    });
  });

  test('scores that do not line up with the labels are refused', () => {
    const input = reportInput();
    input.products[1]!.baselines[0]!.scores = new Float32Array(10);
    expect(() => buildReport(input)).toThrow(/recency-frequency" has 10 scores for 1500 labelled customers/);
  });
});
