import { describe, expect, test } from 'vitest';
import { InputError, ModelError } from '../core/errors.js';
import { computeMetrics } from '../coordinator/evaluate/index.js';
import {
  bruteBestF1,
  bruteBrier,
  bruteCalibration,
  bruteLogLoss,
  liftOfTopRows,
  pairCountAuc,
  seededRandom,
  syntheticSet,
} from './helpers/evaluate.js';

describe('evaluation metrics', () => {
  test('match a brute-force computation on scores with many ties', () => {
    const { labels, informative } = syntheticSet(1500, 21, { decimals: 2 });
    const m = computeMetrics(labels, informative);
    expect(m.n).toBe(1500);
    expect(m.positives).toBe(labels.reduce((a, b) => a + b, 0));
    expect(m.auc!).toBeCloseTo(pairCountAuc(labels, informative), 12);
    expect(m.brier).toBeCloseTo(bruteBrier(labels, informative), 12);
    expect(m.logLoss).toBeCloseTo(bruteLogLoss(labels, informative, 1e-7), 12);
    const f1 = bruteBestF1(labels, informative);
    expect(m.f1!).toBeCloseTo(f1.f1, 12);
    expect(m.f1Threshold).toBe(f1.threshold);
    const calibration = bruteCalibration(labels, informative);
    m.calibration.forEach((bin, b) => {
      const [count, mean, rate] = calibration[b]!;
      expect(bin.count).toBe(count);
      if (mean === null) expect(bin.meanPredicted).toBeNull();
      else expect(bin.meanPredicted!).toBeCloseTo(mean, 12);
      if (rate === null) expect(bin.observedRate).toBeNull();
      else expect(bin.observedRate!).toBeCloseTo(rate, 12);
    });
  });

  test('lift@5 % and @20 % is the precision of the top rows over the base rate when scores are distinct', () => {
    const { labels, informative } = syntheticSet(2000, 22); // continuous scores: no ties
    expect(new Set(informative).size).toBe(2000);
    const order = Array.from(informative.keys()).sort((a, b) => informative[b]! - informative[a]!);
    const m = computeMetrics(labels, informative);
    expect(m.lift5!).toBeCloseTo(liftOfTopRows(labels, order, 100), 12);
    expect(m.lift20!).toBeCloseTo(liftOfTopRows(labels, order, 400), 12);
  });

  test('lift with a tie group across the cut is the average over every order of the tied rows', () => {
    // 20 rows, top 5 % = 1 row; the top score is shared by 4 rows, 2 of them buyers.
    const scores = Float32Array.from([0.9, 0.9, 0.9, 0.9, ...Array.from({ length: 16 }, (_, i) => 0.5 - i * 0.01)]);
    const labels = Int8Array.from([1, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    const tied = [0, 1, 2, 3];
    const rest = Array.from({ length: 16 }, (_, i) => 4 + i);
    const lifts: number[] = [];
    for (const perm of permutations(tied)) lifts.push(liftOfTopRows(labels, [...perm, ...rest], 1));
    const expected = lifts.reduce((a, b) => a + b, 0) / lifts.length;
    expect(computeMetrics(labels, scores).lift5!).toBeCloseTo(expected, 12);
    // … and the row order of the input never matters
    const reversed = computeMetrics(Int8Array.from(labels).reverse(), Float32Array.from(scores).reverse());
    expect(reversed.lift5).toBeCloseTo(expected, 12);
  });

  test('sample weights count like repeated rows', () => {
    const random = seededRandom(23);
    const { labels, informative } = syntheticSet(400, 24, { decimals: 2 });
    const weights = Float32Array.from(labels, () => 1 + Math.floor(random() * 3));
    const repeatedLabels: number[] = [];
    const repeatedScores: number[] = [];
    labels.forEach((y, i) => {
      for (let k = 0; k < weights[i]!; k++) {
        repeatedLabels.push(y);
        repeatedScores.push(informative[i]!);
      }
    });
    const weighted = computeMetrics(labels, informative, weights);
    const repeated = computeMetrics(Int8Array.from(repeatedLabels), Float32Array.from(repeatedScores));
    for (const key of ['auc', 'brier', 'logLoss', 'lift5', 'lift20', 'f1', 'f1Threshold', 'baseRate'] as const) {
      expect(weighted[key]!).toBeCloseTo(repeated[key]!, 10);
    }
    expect(weighted.auc!).toBeCloseTo(pairCountAuc(labels, informative, weights), 12);
    expect(weighted.calibration.map((b) => b.weight)).toEqual(repeated.calibration.map((b) => b.count));
  });

  test('curves run from (0, 0) to (1, 1) and agree with the scalar metrics', () => {
    const { labels, informative } = syntheticSet(3000, 25, { decimals: 3 });
    const m = computeMetrics(labels, informative);
    expect(m.roc[0]).toEqual({ fpr: 0, tpr: 0 });
    expect(m.roc.at(-1)!.fpr).toBeCloseTo(1, 12);
    expect(m.roc.at(-1)!.tpr).toBeCloseTo(1, 12);
    for (let i = 1; i < m.roc.length; i++) {
      expect(m.roc[i]!.fpr).toBeGreaterThanOrEqual(m.roc[i - 1]!.fpr - 1e-12);
      expect(m.roc[i]!.tpr).toBeGreaterThanOrEqual(m.roc[i - 1]!.tpr - 1e-12);
    }
    // The trapezoid area under the ROC points is the tie-aware AUC (exactly, when the points are the tie groups).
    const few = computeMetrics(labels, Float32Array.from(informative, (s) => Math.round(s * 20) / 20), undefined, { curvePoints: 100 });
    let area = 0;
    for (let i = 1; i < few.roc.length; i++) area += ((few.roc[i]!.fpr - few.roc[i - 1]!.fpr) * (few.roc[i]!.tpr + few.roc[i - 1]!.tpr)) / 2;
    expect(area).toBeCloseTo(few.auc!, 12);
    expect(m.gains).toHaveLength(101);
    expect(m.gains[5]!.fraction).toBeCloseTo(0.05, 12);
    expect(m.gains[5]!.lift!).toBeCloseTo(m.lift5!, 12);
    expect(m.gains[20]!.lift!).toBeCloseTo(m.lift20!, 12);
    expect(m.gains.at(-1)!.gain).toBeCloseTo(1, 12);
  });

  test('without buyers the ranking metrics are undefined (null), not invented', () => {
    const { informative } = syntheticSet(100, 26);
    const m = computeMetrics(new Int8Array(100), informative);
    expect([m.auc, m.lift5, m.lift20, m.f1, m.f1Threshold]).toEqual([null, null, null, null, null]);
    expect(m.roc).toEqual([]);
    expect(m.brier).toBeCloseTo(bruteBrier(new Int8Array(100), informative), 12);
  });

  test('malformed inputs are refused with errors that say what to fix', () => {
    const labels = Int8Array.from([0, 1, 0]);
    expect(() => computeMetrics(labels, Float32Array.from([0.1, 0.2]))).toThrow(ModelError);
    expect(() => computeMetrics(labels, Float32Array.from([0.1, Number.NaN, 0.3]))).toThrow(/probabilities/);
    expect(() => computeMetrics(Int8Array.from([0, 2, 0]), Float32Array.from([0.1, 0.2, 0.3]))).toThrow(InputError);
    expect(() => computeMetrics(new Int8Array(0), new Float32Array(0))).toThrow(InputError);
  });
});

function* permutations(items: number[]): Generator<number[]> {
  if (items.length <= 1) {
    yield items;
    return;
  }
  for (let i = 0; i < items.length; i++) {
    for (const rest of permutations([...items.slice(0, i), ...items.slice(i + 1)])) yield [items[i]!, ...rest];
  }
}
