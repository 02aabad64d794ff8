import { describe, expect, test } from 'vitest';
import { aucDifference, aucInterval, computeMetrics, Z_95 } from '../coordinator/evaluate/index.js';
import { bruteDeLongVariance, gaussian, seededRandom, syntheticSet } from './helpers/evaluate.js';

describe('DeLong confidence intervals for the AUC', () => {
  test('a worked example: 2 positives, 3 negatives, one tie', () => {
    // Positives 0.9, 0.4; negatives 0.8, 0.3, 0.4.
    // V10 = [3/3, (1 + ½)/3] = [1, 0.5]; V01 = [1/2, 2/2, (1 + ½)/2] = [0.5, 1, 0.75]; AUC = 0.75.
    // S10 = var(1, 0.5) = 0.125; S01 = var(0.5, 1, 0.75) = 0.0625; Var = 0.125/2 + 0.0625/3 = 1/12.
    const labels = Int8Array.from([1, 1, 0, 0, 0]);
    const ci = aucInterval(labels, Float32Array.from([0.9, 0.4, 0.8, 0.3, 0.4]))!;
    expect(ci.auc).toBeCloseTo(0.75, 12);
    expect(ci.se).toBeCloseTo(Math.sqrt(1 / 12), 12);
    expect(ci.lower).toBeCloseTo(0.75 - Z_95 * Math.sqrt(1 / 12), 12);
    expect(ci.upper).toBe(1); // clipped
    expect(aucInterval(Int8Array.from([0, 0]), Float32Array.from([0.1, 0.2]))).toBeNull();
    // One positive: its variance, hence the interval, is undefined.
    expect(aucInterval(Int8Array.from([1, 0, 0]), Float32Array.from([0.9, 0.1, 0.2]))).toBeNull();
    expect(aucDifference(Int8Array.from([1, 0, 0]), Float32Array.from([0.9, 0.1, 0.2]), Float32Array.from([0.1, 0.2, 0.3]))).toBeNull();
  });

  test('matches the O(m·n) definition exactly, with ties, for one AUC and for a paired difference', () => {
    const s = syntheticSet(400, 5, { decimals: 2 });
    const one = aucInterval(s.labels, s.informative)!;
    expect(one.auc).toBeCloseTo(computeMetrics(s.labels, s.informative).auc!, 12);
    expect(one.se ** 2).toBeCloseTo(bruteDeLongVariance(s.labels, s.informative, s.informative), 12);
    const d = aucDifference(s.labels, s.informative, s.second)!;
    expect(d.difference).toBeCloseTo(computeMetrics(s.labels, s.informative).auc! - computeMetrics(s.labels, s.second).auc!, 12);
    expect(d.se ** 2).toBeCloseTo(bruteDeLongVariance(s.labels, s.informative, s.second), 12);
    expect(d.lower).toBeCloseTo(d.difference - Z_95 * d.se, 12);
  });

  test('its standard errors agree with a bootstrap over customers within 10 %', () => {
    const s = syntheticSet(800, 9, { decimals: 3 });
    const random = seededRandom(77);
    const n = s.labels.length;
    const resamples = 1500;
    const aucs: number[] = [];
    const diffs: number[] = [];
    for (let b = 0; b < resamples; b++) {
      const rows = Array.from({ length: n }, () => Math.floor(random() * n));
      const labels = Int8Array.from(rows, (i) => s.labels[i]!);
      const a = computeMetrics(labels, Float32Array.from(rows, (i) => s.informative[i]!)).auc!;
      const c = computeMetrics(labels, Float32Array.from(rows, (i) => s.second[i]!)).auc!;
      aucs.push(a);
      diffs.push(a - c);
    }
    const sd = (x: number[]) => {
      const m = x.reduce((p, q) => p + q, 0) / x.length;
      return Math.sqrt(x.reduce((p, q) => p + (q - m) ** 2, 0) / (x.length - 1));
    };
    expect(aucInterval(s.labels, s.informative)!.se / sd(aucs)).toBeGreaterThan(0.9);
    expect(aucInterval(s.labels, s.informative)!.se / sd(aucs)).toBeLessThan(1.1);
    expect(aucDifference(s.labels, s.informative, s.second)!.se / sd(diffs)).toBeGreaterThan(0.9);
    expect(aucDifference(s.labels, s.informative, s.second)!.se / sd(diffs)).toBeLessThan(1.1);
  });

  test('a paired difference is narrower than the two intervals suggest when the scores are correlated, and p-values behave', () => {
    const random = seededRandom(3);
    const normal = gaussian(random);
    const n = 2000;
    const latent = Float64Array.from({ length: n }, normal);
    const labels = Int8Array.from(latent, (z) => (random() < 1 / (1 + Math.exp(-(-1.5 + 1.3 * z))) ? 1 : 0));
    const shared = Float64Array.from({ length: n }, normal);
    const a = Float32Array.from(latent, (z, i) => 1 / (1 + Math.exp(-(z + 0.8 * shared[i]!))));
    const b = Float32Array.from(latent, (z, i) => 1 / (1 + Math.exp(-(z + 0.8 * shared[i]! + 0.2 * normal()))));
    const d = aucDifference(labels, a, b)!;
    const ia = aucInterval(labels, a)!;
    const ib = aucInterval(labels, b)!;
    expect(d.se).toBeLessThan(Math.sqrt(ia.se ** 2 + ib.se ** 2) / 2);
    expect(aucDifference(labels, a, a)).toMatchObject({ difference: 0, se: 0, pValue: 1 });
    const noise = Float32Array.from({ length: n }, random);
    expect(aucDifference(labels, a, noise)!.pValue).toBeLessThan(1e-6);
    expect(aucDifference(labels, a, noise)!.lower).toBeGreaterThan(0);
  });
});
