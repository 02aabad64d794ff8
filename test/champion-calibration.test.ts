/**
 * Calibrated scores: Platt scaling fitted on the validation customers turns badly scaled raw scores
 * (here: inflated as class-weighted training inflates them) into probabilities whose mean is the base
 * rate, without changing the ranking; the pipeline applies it to what is published.
 */
import { describe, expect, test } from 'vitest';
import { applyCalibration, aucOf, fitPlattCalibration } from '../coordinator/ensemble/index.js';
import { publishedScores, type ProductChampion } from '../coordinator/pipeline/champion-stage.js';
import { validationCustomers } from './helpers/champion.js';
import { seededRandom } from './helpers/evaluate.js';

const mean = (xs: ArrayLike<number>): number => {
  let sum = 0;
  for (let i = 0; i < xs.length; i++) sum += xs[i]!;
  return sum / xs.length;
};

describe('Platt calibration', () => {
  // Class weight 12 shifts every logit by ln 12 ≈ 2.5; the scale 1.6 makes them over-confident too.
  const inflated = { noise: 0.4, scale: 1.6, shift: Math.log(12) };

  test('inflated raw scores: calibrated on validation, their mean on new customers is the base rate', () => {
    const validation = validationCustomers(5000, 1);
    const later = validationCustomers(5000, 2);
    const raw = validation.view({ ...inflated, seed: 3 });
    const rawLater = later.view({ ...inflated, seed: 4 });
    const baseRate = mean(later.labels);
    expect(mean(rawLater)).toBeGreaterThan(1.8 * baseRate); // the premise: badly scaled (0.42 against 0.21)

    const c = fitPlattCalibration(validation.labels, raw);
    expect(c).toMatchObject({ method: 'platt', fittedOn: { rows: 5000, negativeWeight: 1 } });
    // On the customers it was fitted on, the mean matches exactly (the intercept is not penalised) …
    expect(mean(applyCalibration(c, raw))).toBeCloseTo(mean(validation.labels), 4);
    // … and on new ones within their sampling noise (the base rate's standard error is 0.006 here).
    const calibrated = applyCalibration(c, rawLater);
    expect(Math.abs(mean(calibrated) - baseRate)).toBeLessThan(0.02);
    // Monotone: the ranking and so the AUC are unchanged.
    expect(aucOf(later.labels, calibrated)).toBeCloseTo(aucOf(later.labels, rawLater)!, 6);
    // And by fifth of the score, predicted ≈ observed within 5 points (about 3 standard errors of 1,000 rows), where the raw scores miss.
    const order = Array.from(calibrated.keys()).sort((a, b) => calibrated[a]! - calibrated[b]!);
    let rawMisses = 0;
    for (let q = 0; q < 5; q++) {
      const rows = order.slice(q * 1000, (q + 1) * 1000);
      const observed = mean(rows.map((i) => later.labels[i]!));
      expect(Math.abs(mean(rows.map((i) => calibrated[i]!)) - observed)).toBeLessThan(0.05);
      if (Math.abs(mean(rows.map((i) => rawLater[i]!)) - observed) > 0.05) rawMisses++;
    }
    expect(rawMisses).toBeGreaterThanOrEqual(3);
  });

  test('validation non-buyers sampled at 25 %: weighting them by 4 gives the unsampled base rate', () => {
    const all = validationCustomers(8000, 5);
    const raw = all.view({ ...inflated, seed: 6 });
    const random = seededRandom(7);
    const kept = Array.from(all.labels.keys()).filter((i) => all.labels[i] === 1 || random() < 0.25);
    const labels = Int8Array.from(kept, (i) => all.labels[i]!);
    const scores = Float32Array.from(kept, (i) => raw[i]!);
    const baseRate = mean(all.labels);
    const weighted = applyCalibration(fitPlattCalibration(labels, scores, { negativeWeight: 4 }), raw);
    const unweighted = applyCalibration(fitPlattCalibration(labels, scores), raw);
    expect(Math.abs(mean(weighted) - baseRate)).toBeLessThan(0.01);
    expect(mean(unweighted)).toBeGreaterThan(1.5 * baseRate);
  });

  test('nothing to calibrate on, or scores that do not rank buyers higher: left as they are, with the reason', () => {
    expect(fitPlattCalibration(new Int8Array(10), new Float32Array(10).fill(0.3))).toEqual({
      method: 'none',
      reason: 'the validation customers include 0 buyers among 10: nothing to calibrate on',
    });
    const v = validationCustomers(2000, 8);
    const reversed = v.view({ noise: 0.3, seed: 9, scale: -1 });
    const c = fitPlattCalibration(v.labels, reversed);
    expect(c).toMatchObject({ method: 'none', reason: expect.stringMatching(/do not rank validation buyers above non-buyers/) });
    expect(applyCalibration(c, reversed)).toEqual(reversed);
  });

  test("published scores are the champion's scores through its calibration", () => {
    const v = validationCustomers(3000, 10);
    const raw = v.view({ ...inflated, seed: 11 });
    const champion = {
      product: 'any',
      candidate: 'lstm.any',
      source: 'this-night',
      ensemble: null,
      calibration: fitPlattCalibration(v.labels, raw),
    } as ProductChampion;
    const published = publishedScores(champion, [{ name: 'attention', scores: new Float32Array(3000) }, { name: 'lstm.any', scores: raw }], null);
    expect(published).toEqual(applyCalibration(champion.calibration, raw));
    expect(Math.abs(mean(published) - mean(v.labels))).toBeLessThan(0.01);
    expect(() => publishedScores({ ...champion, source: 'previous' }, [], null)).toThrow(/last published model scores the night but its scores are missing/);
  });
});
