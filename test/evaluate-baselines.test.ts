import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { InputError } from '../core/errors.js';
import {
  computeMetrics,
  fitLogisticRegression,
  logisticRegressionBaseline,
  predictLogistic,
  readCounts,
  recencyFrequencyScores,
  type CustomerCounts,
} from '../coordinator/evaluate/index.js';
import { gaussian, seededRandom, taobaoCountsAndLabels, writeCountsParquet } from './helpers/evaluate.js';
import { withTempDir } from './helpers/publish.js';

const TAOBAO = path.resolve('examples/taobao/events.csv.gz');

describe('baselines', () => {
  test('readCounts aligns the counts file to the given customer order', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'counts.parquet');
      await writeCountsParquet(file, ['pv', 'buy'], [
        { customerId: 'c3', counts: [7, 1], daysSinceLast: 0.5 },
        { customerId: 'c1', counts: [2, 0], daysSinceLast: 3 },
        { customerId: 'c2', counts: [0, 0], daysSinceLast: null },
      ]);
      const counts = await readCounts(file, ['c2', 'c9', 'c1', 'c3']);
      expect(counts.eventTypes).toEqual(['pv', 'buy']);
      expect(Array.from(counts.counts[0]!)).toEqual([0, 0, 2, 7]);
      expect(Array.from(counts.counts[1]!)).toEqual([0, 0, 0, 1]);
      expect(Array.from(counts.daysSinceLast)).toEqual([Number.NaN, Number.NaN, 3, 0.5]);
      expect(counts.missing).toBe(1);
    });
  });

  test('readCounts refuses duplicates and files without the expected columns', async () => {
    await withTempDir(async (dir) => {
      const dup = path.join(dir, 'dup.parquet');
      await writeCountsParquet(dup, ['pv'], [
        { customerId: 'c1', counts: [1], daysSinceLast: 1 },
        { customerId: 'c1', counts: [2], daysSinceLast: 2 },
      ]);
      await expect(readCounts(dup, ['c1'])).rejects.toThrow(/more than once/);
      const ok = path.join(dir, 'ok.parquet');
      await writeCountsParquet(ok, ['pv'], [{ customerId: 'c1', counts: [1], daysSinceLast: 1 }]);
      await expect(readCounts(ok, ['c1', 'c1'])).rejects.toThrow(InputError);
      await expect(readCounts(path.join(dir, 'absent.parquet'), ['c1'])).rejects.toThrow(/run preprocess/);
      const bare = path.join(dir, 'bare.parquet');
      await writeCountsParquet(bare, [], [{ customerId: 'c1', counts: [], daysSinceLast: 1 }]);
      await expect(readCounts(bare, ['c1'])).rejects.toThrow(/n_<eventType>/);
    });
  });

  test('the recency-frequency heuristic prefers recent, frequent buyers and gives 0 without history', () => {
    const counts = countsOf(['view', 'buy'], [
      [[10, 0], 1],
      [[10, 0], 5], // less recent
      [[20, 0], 1], // more frequent
      [[5, 2], 1], // fewer events, two of them purchases
      [[0, 0], Number.NaN], // no history
    ]);
    const [base, older, frequent, bought, none] = recencyFrequencyScores(counts, { purchase: 'buy' });
    expect(older!).toBeLessThan(base!);
    expect(frequent!).toBeGreaterThan(base!);
    expect(bought!).toBeGreaterThan(frequent!); // 5 views + 2 purchases (×10 each) outweigh 20 views
    expect(none).toBe(0);
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

  test('on the Taobao sample both baselines rank next days\' buyers better than chance, deterministically', async () => {
    await withTempDir(async (dir) => {
      const train = await taobaoCountsAndLabels(TAOBAO, path.join(dir, 'train.parquet'), { asOf: '2017-11-30', lookbackDays: 5, horizonDays: 2 });
      const later = await taobaoCountsAndLabels(TAOBAO, path.join(dir, 'eval.parquet'), { asOf: '2017-12-02', lookbackDays: 5, horizonDays: 2 });
      const trainCounts = await readCounts(path.join(dir, 'train.parquet'), train.customerIds);
      const evalCounts = await readCounts(path.join(dir, 'eval.parquet'), later.customerIds);
      expect(evalCounts.missing).toBeGreaterThan(0); // customers first seen in the label window: no history, still scored
      const logistic = logisticRegressionBaseline(trainCounts, train.labels, evalCounts);
      const heuristic = recencyFrequencyScores(evalCounts, { purchase: 'buy' });
      expect(logistic).toHaveLength(later.customerIds.length);
      expect(computeMetrics(later.labels, logistic).auc!).toBeGreaterThan(0.5);
      expect(computeMetrics(later.labels, heuristic).auc!).toBeGreaterThan(0.5);
      expect(logisticRegressionBaseline(trainCounts, train.labels, evalCounts)).toEqual(logistic);
    });
  });

  test('the logistic baseline refuses evaluation counts that lack a training event type', () => {
    const train = countsOf(['view', 'buy'], [[[1, 0], 1], [[3, 1], 0.5]]);
    const evalCounts = countsOf(['view'], [[[1], 1]]);
    expect(() => logisticRegressionBaseline(train, Int8Array.from([0, 1]), evalCounts)).toThrow(/lack event types \[buy\]/);
  });
});

function countsOf(eventTypes: string[], rows: [number[], number][]): CustomerCounts {
  return {
    n: rows.length,
    eventTypes,
    counts: eventTypes.map((_, j) => Float64Array.from(rows, ([c]) => c[j]!)),
    daysSinceLast: Float64Array.from(rows, ([, d]) => d),
    missing: 0,
  };
}
