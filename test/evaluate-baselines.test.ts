import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { InputError } from '../core/errors.js';
import { aggregateLayout } from '../coordinator/features/index.js';
import {
  aucDifference,
  computeMetrics,
  fitLogisticRegression,
  logisticRegressionBaseline,
  predictLogistic,
  recencyFrequencyScores,
  trainingSample,
  withAggregates,
  type ProductAggregates,
} from '../coordinator/evaluate/index.js';
import { categoryFixture, FIXTURE_LAYOUT, gaussian, seededRandom, writeFeatureShard } from './helpers/evaluate.js';
import { withTempDir } from './helpers/publish.js';

const NAMES = FIXTURE_LAYOUT.names;
const at = (name: string) => NAMES.indexOf(name);

/** Raw values in layout order from a few named ones (counts 0, recencies NaN otherwise). */
function values(named: Record<string, number>): (number | null)[] {
  return FIXTURE_LAYOUT.features.map((f) => named[f.name] ?? (f.kind === 'days' || f.kind === 'tenure' ? null : 0));
}

describe('baselines per product, on the aggregate features', () => {
  test('the reader aligns one product\'s features to the given customer order; absent customers have no history', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'shard-0.arrow');
      await writeFeatureShard(file, FIXTURE_LAYOUT, [
        { customerId: 'c3', product: 'A', values: values({ cat_n_view_28d: 7, cat_days_since_event: 0.5, tenure_days: 40 }) },
        { customerId: 'c3', product: 'any', values: values({ cat_n_view_28d: 9 }) },
        { customerId: 'c1', product: 'A', values: values({ cat_n_view_28d: 2, cat_days_since_event: 3 }) },
        { customerId: 'c2', product: 'A', values: values({}) },
      ]);
      const a = await withAggregates([file], FIXTURE_LAYOUT, ['c2', 'c9', 'c1', 'c3'], (r) => r.product('A'));
      expect(a.n).toBe(4);
      expect(Array.from(a.columns[at('cat_n_view_28d')]!)).toEqual([0, 0, 2, 7]);
      // Read back from the shard's float32 values: recencies and tenure within float32 rounding.
      const days = Array.from(a.columns[at('cat_days_since_event')]!);
      expect(days.slice(0, 2)).toEqual([Number.NaN, Number.NaN]);
      expect(days[2]).toBeCloseTo(3, 5);
      expect(days[3]).toBeCloseTo(0.5, 5);
      const tenure = Array.from(a.columns[at('tenure_days')]!);
      expect(tenure.slice(0, 3)).toEqual([Number.NaN, Number.NaN, Number.NaN]);
      expect(tenure[3]).toBeCloseTo(40, 4);
      expect(a.missing).toBe(1);
      // Shards are read as they are: another product's values for the same customers.
      const any = await withAggregates([file], FIXTURE_LAYOUT, ['c3', 'c1'], (r) => r.product('any'));
      expect(Array.from(any.columns[at('cat_n_view_28d')]!)).toEqual([9, 0]);
    });
  });

  test('the reader refuses customers listed twice, unknown products and mismatched feature names', async () => {
    await withTempDir(async (dir) => {
      const row = { customerId: 'c1', product: 'A', values: values({}) };
      const dup = path.join(dir, 'dup.arrow');
      await writeFeatureShard(dup, FIXTURE_LAYOUT, [row], { repeat: 'c1' });
      await expect(withAggregates([dup], FIXTURE_LAYOUT, ['c1'], (r) => r.product('A'))).rejects.toThrow(/customer "c1" twice/);
      const ok = path.join(dir, 'ok.arrow');
      await writeFeatureShard(ok, FIXTURE_LAYOUT, [row]);
      await expect(withAggregates([ok], FIXTURE_LAYOUT, ['c1', 'c1'], (r) => r.product('A'))).rejects.toThrow(InputError);
      await expect(withAggregates([ok], FIXTURE_LAYOUT, ['c1'], (r) => r.product('Z'))).rejects.toThrow(/no product "Z"/);
      await expect(withAggregates([path.join(dir, 'absent.arrow')], FIXTURE_LAYOUT, ['c1'], (r) => r.product('A'))).rejects.toThrow(/preprocess/);
      const other = aggregateLayout({ ...FIXTURE_LAYOUT, windowsDays: [28] });
      await expect(withAggregates([ok], other, ['c1'], (r) => r.product('A'))).rejects.toThrow(/other aggregate features/);
    });
  });

  test('recency-frequency reads the product\'s category: recent, frequent in-category buyers first, 0 without in-category history', () => {
    const a = aggregatesOf([
      { cat_n_view_28d: 10, cat_days_since_event: 1 },
      { cat_n_view_28d: 10, cat_days_since_event: 5 }, // less recent
      { cat_n_view_28d: 20, cat_days_since_event: 1 }, // more frequent
      { cat_n_view_28d: 5, cat_n_buy_28d: 2, cat_days_since_event: 1 }, // fewer events, two of them purchases
      { all_n_view_28d: 50, all_days_since_event: 0.1 }, // busy elsewhere, nothing in the category
    ]);
    const [base, older, frequent, bought, elsewhere] = recencyFrequencyScores(a);
    expect(older!).toBeLessThan(base!);
    expect(frequent!).toBeGreaterThan(base!);
    expect(bought!).toBeGreaterThan(frequent!); // 5 views + 2 purchases (×10 each) outweigh 20 views
    expect(elsewhere).toBe(0);
  });

  test('where the signal is in the category, per-product baselines beat the all-category ones they replace', async () => {
    await withTempDir(async (dir) => {
      const train = categoryFixture(3000, 11);
      const later = categoryFixture(3000, 12);
      await writeFeatureShard(path.join(dir, 'train.arrow'), FIXTURE_LAYOUT, train.rows);
      await writeFeatureShard(path.join(dir, 'score.arrow'), FIXTURE_LAYOUT, later.rows);
      const read = (set: string, ids: string[], product: string) => withAggregates([path.join(dir, `${set}.arrow`)], FIXTURE_LAYOUT, ids, (r) => r.product(product));
      // The old baselines: one set of all-category features for every product ('any' rows: both scopes are overall).
      const trainAll = await read('train', train.customerIds, 'any');
      const laterAll = await read('score', later.customerIds, 'any');
      for (const product of ['A', 'B']) {
        const labels = later.labels.get(product)!;
        const trainAgg = await read('train', train.customerIds, product);
        const laterAgg = await read('score', later.customerIds, product);
        const logistic = logisticRegressionBaseline(trainAgg, train.labels.get(product)!, laterAgg);
        const heuristic = recencyFrequencyScores(laterAgg);
        const oldLogistic = logisticRegressionBaseline(trainAll, train.labels.get(product)!, laterAll);
        const oldHeuristic = recencyFrequencyScores(laterAll);
        const auc = (s: Float32Array) => computeMetrics(labels, s).auc!;
        expect(auc(logistic)).toBeGreaterThan(auc(oldLogistic) + 0.05);
        expect(auc(heuristic)).toBeGreaterThan(auc(oldHeuristic) + 0.05);
        // Beyond noise: the paired DeLong interval of the gain excludes 0.
        expect(aucDifference(labels, logistic, oldLogistic)!.lower).toBeGreaterThan(0);
        // Deterministic.
        expect(logisticRegressionBaseline(trainAgg, train.labels.get(product)!, laterAgg)).toEqual(logistic);
        // Fitted on every buyer and a weighted third of the others, it ranks about as well.
        const capped = logisticRegressionBaseline(trainAgg, train.labels.get(product)!, laterAgg, { maxTrainingRows: 1000 });
        expect(Math.abs(auc(capped) - auc(logistic))).toBeLessThan(0.01);
      }
    });
  }, 30_000);

  test('a large training set is sampled: every buyer, and the others at one rate, weighted back', () => {
    const labels = Int8Array.from({ length: 10_000 }, (_, i) => (i % 50 === 0 ? 1 : 0)); // 200 buyers
    expect(trainingSample(labels, 10_000)).toBeNull();
    const { rows, weights } = trainingSample(labels, 2_000)!;
    expect(Array.from(rows).filter((i) => labels[i] === 1)).toHaveLength(200);
    const rate = 1_800 / 9_800;
    expect(rows.length).toBeGreaterThan(1_800);
    expect(rows.length).toBeLessThan(2_200);
    rows.forEach((i, k) => expect(weights[k]).toBeCloseTo(labels[i] === 1 ? 1 : 1 / rate, 12));
    expect(trainingSample(labels, 2_000)).toEqual({ rows, weights });
  });

  test('the logistic baseline refuses features that differ between training and evaluation', () => {
    const train = aggregatesOf([{ cat_n_view_28d: 1 }, { cat_n_view_28d: 3 }]);
    const other = { ...train, layout: { ...train.layout, names: train.layout.names.slice(1) } };
    expect(() => logisticRegressionBaseline(train, Int8Array.from([0, 1]), other)).toThrow(/training and evaluation features differ/);
    expect(() => logisticRegressionBaseline(train, Int8Array.from([0]), train)).toThrow(/1 training labels for 2 customers/);
  });

  test('the logistic fit satisfies its optimality condition (the penalised gradient vanishes)', () => {
    const random = seededRandom(31);
    const normal = gaussian(random);
    const n = 3000;
    const x1 = Float64Array.from({ length: n }, normal);
    const x2 = Float64Array.from({ length: n }, () => 3 + 2 * normal());
    const labels = Int8Array.from(x1, (v, i) => (random() < 1 / (1 + Math.exp(-(-1 + 1.2 * v - 0.4 * x2[i]!))) ? 1 : 0));
    const l2 = 5;
    const model = fitLogisticRegression([x1, x2], labels, { l2 });
    expect(model.converged).toBe(true);
    let g1 = 0;
    let g2 = 0;
    let gBias = 0;
    for (let i = 0; i < n; i++) {
      const p = 1 / (1 + Math.exp(-(model.bias + model.weights[0]! * x1[i]! + model.weights[1]! * x2[i]!)));
      g1 += (p - labels[i]!) * x1[i]!;
      g2 += (p - labels[i]!) * x2[i]!;
      gBias += p - labels[i]!;
    }
    expect(g1 + l2 * model.weights[0]!).toBeCloseTo(0, 6);
    expect(g2 + l2 * model.weights[1]!).toBeCloseTo(0, 6);
    expect(gBias).toBeCloseTo(0, 6);
    // Standardising inside gives the same predictions as fitting standardised copies by hand.
    const standardise = (x: Float64Array) => {
      const mean = x.reduce((a, b) => a + b, 0) / n;
      const sd = Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
      return x.map((v) => (v - mean) / sd);
    };
    const inside = predictLogistic(fitLogisticRegression([x1, x2], labels, { l2, standardise: true }), [x1, x2]);
    const byHand = predictLogistic(fitLogisticRegression([standardise(x1), standardise(x2)], labels, { l2 }), [standardise(x1), standardise(x2)]);
    inside.forEach((p, i) => expect(p).toBeCloseTo(byHand[i]!, 6));
  });
});

function aggregatesOf(rows: Record<string, number>[]): ProductAggregates {
  const raw = rows.map(values);
  return {
    product: 'A',
    layout: FIXTURE_LAYOUT,
    n: rows.length,
    columns: FIXTURE_LAYOUT.names.map((_, j) => Float64Array.from(raw, (r) => r[j] ?? Number.NaN)),
    missing: 0,
  };
}
