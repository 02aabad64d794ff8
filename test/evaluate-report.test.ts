import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { applyEnsemble, fitEnsemble } from '../coordinator/ensemble/index.js';
import {
  buildReport,
  METRIC_COLUMNS,
  writeReport,
  type EvaluationReport,
  type ProductEvaluationInput,
  type ReportInput,
  MIN_HELD_OUT_POSITIVES,
  MIN_TRAINING_POSITIVES,
  axisMax,
  decileTable,
  reliabilityBins,
  renderHtml,
  scoreHistogram,
  statRows,
} from '../coordinator/evaluate/index.js';
import { bruteBrier, bruteLogLoss, gaussian, pairCountAuc, seededRandom, syntheticSet } from './helpers/evaluate.js';
import { withTempDir } from './helpers/publish.js';
import { earlierNights } from '../coordinator/pipeline/report-history.js';

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
    stats: {
      rowsRead: 84287,
      rowsRejected: { missing_customer: 0, time_out_of_range: 35, duplicate: 2 },
      scoredCustomers: 987654,
      trainSequences: 1,
      stageMs: { validate: 180.4, train: 9976, publish: 125_000 },
      workers: 2,
      window: { from: '2017-11-25', to: '2017-12-02' },
      note: '<not html>',
    },
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
      for (const shown of ['taobao-20171202-0123456789', '2017-12-02 → 2017-12-04', '2017-11-25 → 2017-11-30', 'lstm-v3', 'attention-v3', '987,654 customers']) {
        expect(text).toContain(shown);
      }
      expect(text).toContain('&lt;not html&gt;');
      expect(text).toContain('lstm&lt;b&gt;');
      expect(text).not.toContain('lstm<b>');
    });
  });

  test('run statistics are a labelled table with units: rejected rows by reason, durations per stage, no field names or JSON', async () => {
    const stats = reportInput().stats!;
    expect(statRows(stats).map((r) => [r.indent ? `  ${r.label}` : r.label, r.value])).toEqual([
      ['Rows read', '84,287 rows'],
      ['Rows rejected', '37 rows'],
      ['  Time out of range', '35 rows'],
      ['  Duplicate', '2 rows'],
      ['Customers scored', '987,654 customers'],
      ['Sequences, training set', '1 sequence'],
      ['Duration by stage', '2 min 15 s in all'],
      ['  validate', '180 ms'],
      ['  train', '10.0 s'],
      ['  publish', '2 min 05 s'],
      ['Workers', '2 workers'],
      ['Window', ''],
      ['  From', '2017-11-25'],
      ['  To', '2017-12-02'],
      ['Note', '<not html>'],
    ]);
    await withTempDir(async (dir) => {
      const text = await readFile((await writeReport(dir, buildReport(reportInput()))).html, 'utf8');
      const section = text.slice(text.indexOf('<section class="stats">'), text.indexOf('</section>', text.indexOf('<section class="stats">')));
      expect(section).toContain('<tr><th scope="row">Rows read</th><td>84,287 rows</td></tr>');
      expect(section).toContain('<tr class="sub"><th scope="row">Time out of range</th><td>35 rows</td></tr>');
      expect(section).toContain('<tr class="sub"><th scope="row">train</th><td>10.0 s</td></tr>');
      expect(section).toContain('&lt;not html&gt;');
      expect(section).not.toMatch(/rowsRead|time_out_of_range|stageMs|&quot;|<code>/);
    });
  });

  test('deciles follow the prediction table: rank by score then customer id, decile ⌊(rank − 1)·10/n⌋ + 1, rate and lift per decile', () => {
    const n = 25;
    const scores = Float32Array.from({ length: n }, (_, i) => (i < 4 ? 0.9 : 1 - i / n));
    const labels = Int8Array.from({ length: n }, (_, i) => (i % 4 === 1 ? 1 : 0));
    // Rows 0–3 tie; by customer id the order is row 3, 2, 1, 0.
    const ids = Array.from({ length: n }, (_, i) => `c${String(i < 4 ? 3 - i : i).padStart(2, '0')}`);
    const rows = decileTable(labels, scores, ids);
    expect(rows.map((r) => r.customers)).toEqual([3, 2, 3, 2, 3, 2, 3, 2, 3, 2]);
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]! || ids[a]!.localeCompare(ids[b]!));
    const expected = Array.from({ length: 10 }, () => 0);
    order.forEach((row, rank) => (expected[Math.floor((rank * 10) / n)]! += labels[row]!));
    expect(rows.map((r) => r.buyers)).toEqual(expected);
    expect(expected[0]).toBe(1); // the tie at the cut: row 1 (id c02) is third, row 0 (c03) fourth
    const baseRate = labels.reduce((sum, y) => sum + y, 0) / n;
    for (const r of rows) {
      expect(r.rate).toBeCloseTo(r.buyers / r.customers, 12);
      expect(r.lift).toBeCloseTo(r.buyers / r.customers / baseRate, 12);
      expect(r.maxScore!).toBeGreaterThanOrEqual(r.minScore!);
    }
    expect(rows[0]!.maxScore).toBeCloseTo(0.9, 6);
    expect(decileTable(Int8Array.of(1, 0, 0), Float32Array.of(0.3, 0.2, 0.1)).map((r) => r.customers)).toEqual([1, 0, 0, 1, 0, 0, 1, 0, 0, 0]);
    expect(decileTable(Int8Array.of(0, 0), Float32Array.of(0.3, 0.2))[0]!.lift).toBeNull();
  });

  test('the histogram and the reliability chart run over the scores\' own range, not 0–1', async () => {
    const random = seededRandom(7);
    const n = 20_000;
    // Base rates of 0.1–0.7 %: scores up to 0.7 %, buyers drawn at the score.
    const scores = Float32Array.from({ length: n }, () => 0.001 + 0.006 * random());
    const labels = Int8Array.from(scores, (s) => (random() < s ? 1 : 0));
    expect(axisMax(0.0068)).toBe(0.008);
    expect(axisMax(0.2)).toBe(0.25);
    expect(axisMax(0.55)).toBe(0.8);
    expect(axisMax(0.95, { cap: 1 })).toBe(1);
    expect(axisMax(0)).toBe(1);

    const bins = scoreHistogram(labels, scores);
    expect(bins).toHaveLength(20);
    expect(bins.at(-1)!.upper).toBe(0.008);
    expect(bins.reduce((s, b) => s + b.customers, 0)).toBe(n);
    expect(bins.reduce((s, b) => s + b.buyers, 0)).toBe(labels.reduce((s, y) => s + y, 0));
    for (const b of bins) {
      const inside = [...scores.keys()].filter((i) => scores[i]! >= b.lower && scores[i]! < b.upper);
      expect(b.customers).toBe(inside.length);
    }

    const reliability = reliabilityBins(labels, scores);
    expect(reliability.map((b) => b.count)).toEqual(Array.from({ length: 10 }, () => n / 10));
    for (let k = 1; k < reliability.length; k++) expect(reliability[k]!.meanPredicted).toBeGreaterThan(reliability[k - 1]!.meanPredicted);
    // Tied scores stay in one bin.
    expect(reliabilityBins(Int8Array.of(0, 1, 0, 1), Float32Array.of(0.1, 0.1, 0.1, 0.2), undefined, 4)).toEqual([
      { count: 3, meanPredicted: expect.closeTo(0.1, 6), observedRate: 1 / 3 },
      { count: 1, meanPredicted: expect.closeTo(0.2, 6), observedRate: 1 },
    ]);

    const input = reportInput();
    input.products = [{ product: 'rare', labels, models: [{ name: 'lstm', modelVersion: 'lstm-v1', scores }], baselines: [{ name: 'recency-frequency', scores: Float32Array.from(scores, (s) => s * 100), probability: false }] }];
    const report = buildReport(input);
    expect(report.products[0]!.entries.map((e) => e.reliability === null)).toEqual([false, true]);
    await withTempDir(async (dir) => {
      const text = await readFile((await writeReport(dir, report)).html, 'utf8');
      const chart = /<svg class="chart calibration".*?<\/svg>/s.exec(text)![0];
      const top = Math.max(...reliability.flatMap((b) => [b.meanPredicted, b.observedRate]));
      const ticks = [...chart.matchAll(/<text class="tick x"[^>]*>([^<]*)</g)].map((m) => m[1]);
      expect(ticks.at(-1)).toMatch(/ %$/);
      expect(Number.parseFloat(ticks.at(-1)!)).toBeCloseTo(axisMax(top) * 100, 9);
      expect(axisMax(top)).toBeLessThan(0.02);
      expect(chart.match(/<polyline class="series"/g)).toHaveLength(1); // the ranking score is left out
      const histogram = /<svg class="chart histogram".*?<\/svg>/s.exec(text)![0];
      expect([...histogram.matchAll(/<text class="tick x"[^>]*>([^<]*)</g)].map((m) => m[1]).at(-1)).toBe('0.80 %');
    });
  });

  test('training curves per model, customers per action and the earlier nights\' AUC are shown when given', async () => {
    const input = reportInput();
    input.products[0]!.training = [
      { name: 'lstm', modelVersion: 'lstm-v3', bestEpoch: 2, epochs: [1, 2, 3].map((epoch) => ({ epoch, trainLoss: 1 / epoch, validationAuc: 0.6 + epoch / 100 })) },
      { name: 'logistic', modelVersion: 'logistic-v3', bestEpoch: 1, epochs: [{ epoch: 1, trainLoss: null, validationAuc: 0.64 }] },
    ];
    input.products[0]!.earlierNights = [
      { date: '2017-11-30', runId: 'r1', published: 'ensemble', auc: 0.61, lower: 0.58, upper: 0.64, n: 800, positives: 230, evaluatedOn: 'label window', flagged: false },
      { date: '2017-12-01', runId: 'r2', published: 'lstm', auc: 0.63, lower: null, upper: null, n: 810, positives: 5, evaluatedOn: 'label window', flagged: true },
    ];
    const report = buildReport(input);
    report.products[0]!.audiences = [{ action: 'in_store', customers: 40 }, { action: 'none', customers: 1460 }];
    const text = renderHtml(report);
    const section = (k: number) => text.slice(text.indexOf(`id="product-${k}"`), text.indexOf('</section>\n</section>', text.indexOf(`id="product-${k}"`)));
    const first = section(0);
    const auc = /<svg class="chart training-auc".*?<\/svg>/s.exec(first)![0];
    expect([...auc.matchAll(/<polyline class="series" data-series="([^"]+)"/g)].map((m) => m[1])).toEqual(['lstm', 'logistic']);
    const loss = /<svg class="chart training-loss".*?<\/svg>/s.exec(first)![0];
    expect([...loss.matchAll(/<polyline class="series" data-series="([^"]+)"/g)].map((m) => m[1])).toEqual(['lstm']);
    expect(first).toContain('<tr data-model="lstm"><th scope="row">lstm</th><td>lstm-v3</td><td>3</td><td>2</td><td>0.6200</td></tr>');
    expect(first).toContain('<tr data-action="in_store"><th scope="row">in_store</th><td>40</td><td>2.7 %</td></tr>');
    expect(first).toMatch(/<tr class="earlier"><th scope="row">2017-11-30<\/th><td>ensemble<\/td><td data-metric="auc">0.6100<\/td><td>0.5800 – 0.6400<\/td>/);
    expect(first).toContain('<tr class="earlier few"><th scope="row">2017-12-01</th>');
    expect(first).toMatch(/<tr class="this-night"><th scope="row">this night<\/th><td>ensemble<\/td><td data-metric="auc">0\.\d{4}<\/td>/);
    const history = /<svg class="chart history".*?<\/svg>/s.exec(first)![0];
    expect([...history.matchAll(/<text class="tick x"[^>]*>([^<]*)</g)].map((m) => m[1])).toEqual(['11-30', '12-01', 'this night']);
    const aucLine = /<polyline class="series" data-series="AUC" points="([^"]+)"/.exec(history)![1]!;
    expect(aucLine.split(' ')).toHaveLength(3);
    const second = section(1);
    expect(second).toContain('No training history');
    expect(second).toContain('Not published yet');
    expect(second).toContain('No earlier committed night');
    expect(second).not.toContain('<svg class="chart history"');
    // A report.json written before these sections still renders, without them.
    const older = JSON.parse(JSON.stringify(report)) as EvaluationReport;
    for (const p of older.products as unknown as Record<string, unknown>[]) {
      for (const key of ['deciles', 'histogram', 'training', 'earlierNights']) delete p[key];
      for (const e of p.entries as Record<string, unknown>[]) delete e.reliability;
    }
    expect(renderHtml(older)).toContain('No published scores.');
    expect(second.match(/<tr data-decile=/g)).toHaveLength(10);
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

  test('every entry carries its AUC with a 95 % DeLong interval, and the published scores are compared with the best baseline', () => {
    const report = buildReport(reportInput());
    for (const p of report.products) {
      for (const e of p.entries) {
        expect(e.aucCi!.auc).toBeCloseTo(e.metrics.auc!, 12);
        expect(e.aucCi!.lower).toBeLessThan(e.metrics.auc!);
        expect(e.aucCi!.upper).toBeGreaterThan(e.metrics.auc!);
      }
      expect(p.published).toBe('ensemble');
      expect(p.bestBaseline).toBe('recency-frequency'); // the noise baseline is worse
      const ensemble = p.entries.find((e) => e.name === 'ensemble')!.metrics.auc!;
      const baseline = p.entries.find((e) => e.name === 'recency-frequency')!.metrics.auc!;
      expect(p.comparison!.difference).toBeCloseTo(ensemble - baseline, 12);
      expect(p.comparison).toMatchObject({ published: 'ensemble', baseline: 'recency-frequency' });
    }
  });

  test('the verdict says "loses" when a baseline is better beyond noise, "level" when the interval contains 0, "beats" otherwise', () => {
    const random = seededRandom(19);
    const normal = gaussian(random);
    const n = 1500;
    const latent = Float64Array.from({ length: n }, normal);
    const labels = Int8Array.from(latent, (z) => (random() < 1 / (1 + Math.exp(-(-1.5 + 1.5 * z))) ? 1 : 0));
    const view = (noise: number) => Float32Array.from(latent, (z) => 1 / (1 + Math.exp(-(z + noise * normal()))));
    const weak = view(2.5);
    const strong = view(0.5);
    const alsoStrong = view(0.5);
    const product = (published: Float32Array, baseline: Float32Array): ProductEvaluationInput => ({
      product: 'A',
      labels,
      models: [{ name: 'lstm.A', modelVersion: 'lstm.A-v1', scores: published }],
      baselines: [
        { name: 'recency-frequency', scores: Float32Array.from({ length: n }, random) },
        { name: 'logistic-counts', scores: baseline },
      ],
    });
    const verdict = (published: Float32Array, baseline: Float32Array) => {
      const input = reportInput();
      input.products = [product(published, baseline)];
      return buildReport(input).products[0]!;
    };
    const loses = verdict(weak, strong);
    expect(loses.published).toBe('lstm.A');
    expect(loses.bestBaseline).toBe('logistic-counts');
    expect(loses.comparison!.upper).toBeLessThan(0);
    expect(loses.verdict.outcome).toBe('loses');
    expect(loses.verdict.text).toBe(
      `lstm.A loses to the best baseline logistic-counts by ${(-loses.comparison!.difference).toFixed(3)} (95 % CI of the difference −${(-loses.comparison!.lower).toFixed(3)}..−${(-loses.comparison!.upper).toFixed(3)})`,
    );
    const level = verdict(strong, alsoStrong);
    expect(level.comparison!.lower).toBeLessThan(0);
    expect(level.comparison!.upper).toBeGreaterThan(0);
    expect(level.verdict.outcome).toBe('level');
    expect(level.verdict.text).toMatch(/^lstm\.A is level with the best baseline logistic-counts: difference [+−]0\.\d{3} \(95 % CI of the difference −0\.\d{3}\.\.\+0\.\d{3}, contains 0\)$/);
    const beats = verdict(strong, weak);
    expect(beats.comparison!.lower).toBeGreaterThan(0);
    expect(beats.verdict.outcome).toBe('beats');
    const input = reportInput();
    input.products[0]!.baselines = [];
    expect(buildReport(input).products[0]!.verdict).toEqual({ outcome: 'undetermined', text: 'none: no baseline to compare with' });
  });

  test('a product with 3 positives is flagged, and its figures are greyed with the warning and no best AUC in bold', async () => {
    await withTempDir(async (dir) => {
      const input = reportInput();
      const few = input.products[1]!;
      let kept = 0;
      few.labels = few.labels.map((y) => (y === 1 && kept++ < 3 ? 1 : 0));
      few.positives = { training: 120, validation: 12 };
      input.products[0]!.positives = { training: 400, validation: 60 };
      const report = buildReport(input);
      const [healthy, flagged] = report.products;
      expect(healthy!.flags).toEqual([]);
      expect(flagged!.positives).toBe(3);
      expect(flagged!.positivesBySet).toEqual({ training: 120, validation: 12, evaluation: 3 });
      expect(flagged!.flags).toEqual([
        {
          code: 'few-evaluation-positives',
          set: 'evaluation',
          positives: 3,
          minimum: MIN_HELD_OUT_POSITIVES,
          message: `3 positives in the evaluation window (fewer than ${MIN_HELD_OUT_POSITIVES})`,
        },
      ]);
      input.products[1]!.positives = { training: 3, validation: 0 };
      expect(buildReport(input).products[1]!.flags.map((f) => [f.set, f.positives, f.minimum])).toEqual([
        ['training', 3, MIN_TRAINING_POSITIVES],
        ['validation', 0, MIN_HELD_OUT_POSITIVES],
        ['evaluation', 3, MIN_HELD_OUT_POSITIVES],
      ]);

      const { html } = await writeReport(dir, report);
      const text = await readFile(html, 'utf8');
      const section = (k: number) => text.slice(text.indexOf(`id="product-${k}"`), text.indexOf('</section>', text.indexOf(`id="product-${k}"`)));
      expect(text).toContain('<section class="product flagged" id="product-1"');
      expect(text).toContain('<section class="product" id="product-0"');
      expect(section(1)).toContain(
        `<p class="warning" data-flags="few-evaluation-positives">Warning: too few positives, its figures are noise: 3 positives in the evaluation window (fewer than ${MIN_HELD_OUT_POSITIVES}).</p>`,
      );
      expect(section(1)).not.toContain('Best AUC');
      expect(section(1)).not.toMatch(/class="best/);
      expect(section(0)).toContain(`Best AUC: <strong>${healthy!.bestByAuc}</strong>`);
      expect(section(0)).toMatch(/<p class="verdict" data-outcome="(beats|loses|level)">Verdict: ensemble /);
      for (const [k, p] of report.products.entries()) {
        for (const e of p.entries) {
          const row = new RegExp(`<tr data-entry="${e.name}"[^>]*>(.*?)</tr>`, 's').exec(section(k))![1]!;
          expect(row).toContain(`<td data-ci="auc">${e.aucCi!.lower.toFixed(4)} – ${e.aucCi!.upper.toFixed(4)}</td>`);
        }
      }
    });
  });

  test('earlier nights: only committed dates before this one whose run folder still holds the committed run\'s report, newest first kept', async () => {
    await withTempDir(async (out) => {
      const night = async (date: string, o: { committed?: string; reportRunId?: string }) => {
        const predictions = path.join(out, 'predictions', 'account=acme', `date=${date}`);
        await mkdir(predictions, { recursive: true });
        if (o.committed) await writeFile(path.join(predictions, '_committed.json'), JSON.stringify({ formatVersion: 1, account: 'acme', date, runId: o.committed }));
        if (o.reportRunId) {
          const input = reportInput();
          input.header = { ...input.header, date, runId: o.reportRunId };
          input.stats = { evaluatedOn: 'label window after the scored date' };
          const dir = path.join(out, 'runs', 'account=acme', `date=${date}`, 'report');
          await writeReport(dir, buildReport(input));
        }
      };
      await night('2017-11-28', { committed: 'r28', reportRunId: 'r28' });
      await night('2017-11-29', { committed: 'r29', reportRunId: 'r29' });
      await night('2017-11-30', { committed: 'r30', reportRunId: 'r30-unpublished-rerun' });
      await night('2017-12-01', { reportRunId: 'r01' }); // not committed
      await night('2017-12-02', { committed: 'r02' }); // run folder removed by retention
      await night('2017-12-03', { committed: 'r03', reportRunId: 'r03' }); // this night
      await night('2017-12-04', { committed: 'r04', reportRunId: 'r04' }); // later

      const found = await earlierNights(out, 'acme', '2017-12-03');
      expect([...found.keys()]).toEqual(['any', 'cat-4756105']);
      const any = found.get('any')!;
      expect(any.map((e) => [e.date, e.runId])).toEqual([['2017-11-28', 'r28'], ['2017-11-29', 'r29']]);
      const expected = buildReport(reportInput()).products[0]!;
      const published = expected.entries.find((e) => e.name === expected.published)!;
      expect(any[1]).toEqual({
        date: '2017-11-29',
        runId: 'r29',
        published: 'ensemble',
        auc: published.metrics.auc,
        lower: published.aucCi!.lower,
        upper: published.aucCi!.upper,
        n: expected.n,
        positives: expected.positives,
        evaluatedOn: 'label window',
        flagged: false,
      });
      expect((await earlierNights(out, 'acme', '2017-12-03', 1)).get('any')!.map((e) => e.date)).toEqual(['2017-11-29']);
      expect((await earlierNights(path.join(out, 'nothing-here'), 'acme', '2017-12-03')).size).toBe(0);
    });
  });
});
