import { describe, expect, test } from 'vitest';
import { ModelError } from '../core/errors.js';
import { applyEnsemble, fitEnsemble } from '../coordinator/ensemble/index.js';
import { MIN_HELD_OUT_POSITIVES } from '../coordinator/evaluate/index.js';
import { bruteLogLoss, pairCountAuc, syntheticSet } from './helpers/evaluate.js';

describe('ensemble per product', () => {
  test('mean records equal weights and averages the probabilities', () => {
    const v = syntheticSet(500, 1);
    const models = [
      { name: 'lstm', scores: v.informative },
      { name: 'attention', scores: v.second },
    ];
    const spec = fitEnsemble('mean', { labels: v.labels, models });
    expect(spec).toMatchObject({ method: 'mean', requested: 'mean', models: ['lstm', 'attention'], weights: [0.5, 0.5] });
    expect(spec.fittedOn).toEqual({ rows: 500, positives: v.labels.reduce((a, b) => a + b, 0) });
    const combined = applyEnsemble(spec, [...models].reverse()); // matched by name, not position
    combined.forEach((s, i) => expect(s).toBe(Math.fround((v.informative[i]! + v.second[i]!) / 2)));
  });

  test('with a single model the ensemble is that model, weight 1, whatever the method', () => {
    const v = syntheticSet(300, 2);
    for (const method of ['mean', 'fitted'] as const) {
      const spec = fitEnsemble(method, { labels: v.labels, models: [{ name: 'lstm', scores: v.informative }] });
      expect(spec.method).toBe('mean');
      expect(spec.weights).toEqual([1]);
      expect(applyEnsemble(spec, [{ name: 'lstm', scores: v.informative }])).toEqual(v.informative);
    }
    expect(fitEnsemble('fitted', { labels: v.labels, models: [{ name: 'lstm', scores: v.informative }] }).fallbackReason).toMatch(/single model/);
  });

  test('fitted records weights and bias, deterministically, and weighs the informative model over the noise', () => {
    const v = syntheticSet(4000, 3);
    const models = [
      { name: 'lstm', scores: v.informative },
      { name: 'noise', scores: v.noise },
    ];
    const spec = fitEnsemble('fitted', { labels: v.labels, models });
    expect(spec.method).toBe('fitted');
    expect(spec.fallbackReason).toBeUndefined();
    expect(spec.bias).toEqual(expect.any(Number));
    expect(spec.weights[0]!).toBeGreaterThan(5 * Math.abs(spec.weights[1]!));
    expect(fitEnsemble('fitted', { labels: v.labels, models })).toEqual(spec);
    expect(JSON.parse(JSON.stringify(spec))).toEqual(spec); // recordable as is
  });

  test('a fitted ensemble is at least as good as the mean on later data when one model is noise', () => {
    const validation = syntheticSet(4000, 4);
    const later = syntheticSet(4000, 5);
    const fit = (method: 'mean' | 'fitted') =>
      fitEnsemble(method, {
        labels: validation.labels,
        models: [
          { name: 'lstm', scores: validation.informative },
          { name: 'noise', scores: validation.noise },
        ],
      });
    const scoreLater = (method: 'mean' | 'fitted') =>
      applyEnsemble(fit(method), [
        { name: 'lstm', scores: later.informative },
        { name: 'noise', scores: later.noise },
      ]);
    const mean = scoreLater('mean');
    const fitted = scoreLater('fitted');
    expect(pairCountAuc(later.labels, fitted)).toBeGreaterThanOrEqual(pairCountAuc(later.labels, mean));
    expect(bruteLogLoss(later.labels, fitted, 1e-7)).toBeLessThanOrEqual(bruteLogLoss(later.labels, mean, 1e-7));
  });

  test('fitted falls back to the mean, saying why, when validation has no buyers', () => {
    const v = syntheticSet(200, 6);
    const spec = fitEnsemble('fitted', {
      labels: new Int8Array(200),
      models: [
        { name: 'lstm', scores: v.informative },
        { name: 'attention', scores: v.second },
      ],
    });
    expect(spec).toMatchObject({ method: 'mean', requested: 'fitted', weights: [0.5, 0.5], fittedOn: { rows: 200, positives: 0 } });
    expect(spec.fallbackReason).toMatch(/0 buyers/);
  });

  test('fitted falls back to the mean, saying why, when validation has fewer buyers than MIN_HELD_OUT_POSITIVES', () => {
    const v = syntheticSet(2000, 8);
    const models = [
      { name: 'lstm', scores: v.informative },
      { name: 'noise', scores: v.noise },
    ];
    const keep = (k: number) => {
      let kept = 0;
      return v.labels.map((y) => (y === 1 && kept++ < k ? 1 : 0));
    };
    const few = fitEnsemble('fitted', { labels: keep(MIN_HELD_OUT_POSITIVES - 1), models });
    expect(few).toMatchObject({ method: 'mean', requested: 'fitted', weights: [0.5, 0.5], fittedOn: { rows: 2000, positives: MIN_HELD_OUT_POSITIVES - 1 } });
    expect(few.fallbackReason).toBe(
      `the validation window has ${MIN_HELD_OUT_POSITIVES - 1} buyers among 2000 customers (fewer than ${MIN_HELD_OUT_POSITIVES}): too few to fit weights on`,
    );
    expect(fitEnsemble('fitted', { labels: keep(MIN_HELD_OUT_POSITIVES), models }).method).toBe('fitted');
    // Non-buyers are the rare class just the same.
    const mostlyBuyers = Int8Array.from(keep(3), (y) => 1 - y);
    expect(fitEnsemble('fitted', { labels: mostlyBuyers, models }).fallbackReason).toMatch(/has 3 non-buyers among 2000/);
  });

  test('applying an ensemble without one of its models is refused', () => {
    const v = syntheticSet(50, 7);
    const spec = fitEnsemble('mean', {
      labels: v.labels,
      models: [
        { name: 'lstm', scores: v.informative },
        { name: 'attention', scores: v.second },
      ],
    });
    expect(() => applyEnsemble(spec, [{ name: 'lstm', scores: v.informative }])).toThrow(ModelError);
    expect(() => fitEnsemble('mean', { labels: v.labels, models: [] })).toThrow(ModelError);
  });
});
