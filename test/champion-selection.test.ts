/**
 * Champion selection: per product the published candidate is the one best on the validation customers,
 * a simpler one (the logistic model, then the ensemble) winning whenever it is not worse beyond noise,
 * and the mean ensemble when there are too few validation buyers to tell.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, test } from 'vitest';
import { aucOf, AUC_TOLERANCE, chooseChampion, pairedAucComparison, MIN_VALIDATION_POSITIVES } from '../coordinator/ensemble/index.js';
import { chooseChampions, championFile, type ChampionFile } from '../coordinator/pipeline/champion-stage.js';
import type { ModelsFile } from '../coordinator/pipeline/index.js';
import { tempRunFolder, validationCustomers } from './helpers/champion.js';
import { pairCountAuc, syntheticSet } from './helpers/evaluate.js';
import { taobaoJob } from './helpers/preprocess.js';

describe('AUC and the paired bootstrap', () => {
  test('AUC matches a brute-force pair count, ties included', () => {
    const v = syntheticSet(600, 21, { decimals: 2 });
    expect(aucOf(v.labels, v.informative)).toBeCloseTo(pairCountAuc(v.labels, v.informative), 12);
    expect(aucOf(v.labels, v.noise)).toBeCloseTo(pairCountAuc(v.labels, v.noise), 12);
    expect(aucOf(new Int8Array([1, 1]), new Float32Array([0.2, 0.3]))).toBeNull();
  });

  test('the interval covers the difference, is the same for the same seed, and excludes 0 for a real gap', () => {
    const v = validationCustomers(3000, 5);
    const good = v.view({ noise: 0.3, seed: 1 });
    const poor = v.view({ noise: 2, seed: 2 });
    const a = pairedAucComparison(v.labels, good, poor, { seed: 9 });
    expect(a.difference).toBeCloseTo(aucOf(v.labels, good)! - aucOf(v.labels, poor)!, 12);
    expect(a.lower).toBeLessThanOrEqual(a.difference);
    expect(a.upper).toBeGreaterThanOrEqual(a.difference);
    expect(a.lower).toBeGreaterThan(0);
    expect(pairedAucComparison(v.labels, good, poor, { seed: 9 })).toEqual(a);
    // The same scores twice: no difference in any resample.
    expect(pairedAucComparison(v.labels, good, good)).toMatchObject({ difference: 0, lower: 0, upper: 0 });
  });
});

describe('choosing the candidate', () => {
  const v = validationCustomers(4000, 11);

  test('a model clearly better than the ensemble is published', () => {
    const choice = chooseChampion(v.labels, [
      { name: 'ensemble', scores: v.view({ noise: 1.5, seed: 1 }) },
      { name: 'lstm.any', scores: v.view({ noise: 0.2, seed: 2 }) },
    ]);
    expect(choice.chosen).toBe('lstm.any');
    expect(choice.reason).toMatch(/"lstm.any" has the best validation AUC/);
    const ensemble = choice.candidates.find((c) => c.name === 'ensemble')!;
    expect(ensemble.versusBest!.upper).toBeLessThan(0);
  });

  test('within noise of the best, the logistic model wins; then the ensemble before the others', () => {
    const small = validationCustomers(400, 12);
    const best = small.view({ noise: 0.4, seed: 3 });
    const nearly = small.view({ noise: 0.6, seed: 4 });
    expect(aucOf(small.labels, best)!).toBeGreaterThan(aucOf(small.labels, nearly)!); // the premise: the model is best
    const withEnsemble = chooseChampion(small.labels, [
      { name: 'lstm.any', scores: best },
      { name: 'ensemble', scores: nearly },
    ]);
    expect(withEnsemble.chosen).toBe('ensemble');
    expect(withEnsemble.reason).toMatch(/simpler than the best, "lstm.any".*not worse beyond noise/);

    const withLogistic = chooseChampion(small.labels, [
      { name: 'ensemble', scores: nearly },
      { name: 'lstm.any', scores: best },
      { name: 'logistic.any', scores: nearly },
    ]);
    expect(withLogistic.chosen).toBe('logistic.any');
  });
  test('consistently but immaterially worse (under AUC_TOLERANCE), the simpler one still wins, and the reason says so', () => {
    // The ensemble ranks like the model except for a few buyers pushed to the bottom: a small, consistent deficit.
    const best = v.view({ noise: 0.3, seed: 5 });
    const slightly = Float32Array.from(best);
    let moved = 0;
    for (let i = 0; i < slightly.length && moved < 3; i++) if (v.labels[i] === 1) (slightly[i] = -100), moved++;
    const choice = chooseChampion(v.labels, [
      { name: 'lstm.any', scores: best },
      { name: 'ensemble', scores: slightly },
    ]);
    const cmp = choice.candidates.find((c) => c.name === 'ensemble')!.versusBest!;
    expect(cmp.upper).toBeLessThan(0);
    expect(cmp.difference).toBeGreaterThan(-AUC_TOLERANCE);
    expect(choice.chosen).toBe('ensemble');
    expect(choice.reason).toMatch(new RegExp(`worse by less than the ${AUC_TOLERANCE} that counts`));
    expect(choice.reason).not.toMatch(/not worse beyond noise/);
  });

  test('an exact tie goes to the simpler candidate whatever the order given', () => {
    const s = v.view({ noise: 0.5, seed: 6 });
    expect(chooseChampion(v.labels, [{ name: 'attention', scores: s }, { name: 'logistic.any', scores: s }, { name: 'ensemble', scores: v.view({ noise: 4, seed: 7 }) }]).chosen).toBe(
      'logistic.any',
    );
  });

  test(`fewer than ${MIN_VALIDATION_POSITIVES} validation buyers: the ensemble, with a warning`, () => {
    const labels = new Int8Array(500);
    for (let i = 0; i < 9; i++) labels[i * 50] = 1;
    const perfect = Float32Array.from(labels, (y) => (y ? 0.9 : 0.1));
    const choice = chooseChampion(labels, [
      { name: 'ensemble', scores: new Float32Array(500).fill(0.5) },
      { name: 'lstm.any', scores: perfect },
    ]);
    expect(choice.chosen).toBe('ensemble');
    expect(choice.warning).toMatch(/only 9 validation buyers among 500 customers \(fewer than 10\)/);
    expect(choice.candidates.every((c) => c.auc === null)).toBe(true);
  });
});

describe('the pipeline step', () => {
  const modelsFile = (dir: string): ModelsFile => ({
    runId: 'r',
    trainedAsOf: '2017-11-30',
    products: ['any'],
    models: ['lstm.any', 'logistic.any'].map((name) => ({
      name,
      architecture: 'lstm' as const,
      product: 'any',
      modelVersion: `${name}-v1`,
      dir: `${dir}/${name}`,
      bestEpoch: 1,
      validationAuc: 0.7,
      history: [],
      search: null,
    })),
  });

  test('writes champion.json with the choice, its models and its calibration; a mean ensemble when buyers are too few', async () => {
    const folder = await tempRunFolder();
    const v = validationCustomers(2000, 13);
    const models = modelsFile(folder.modelsDir);
    const scores = { 'lstm.any': v.view({ noise: 0.2, seed: 1 }), 'logistic.any': v.view({ noise: 2.5, seed: 2 }) };
    const validation = async () => ({
      ids: v.ids,
      labels: v.labels,
      models: models.models.map((m) => ({ name: m.name, modelVersion: m.modelVersion, scores: scores[m.name as keyof typeof scores] })),
    });
    const fitted = { method: 'fitted' as const, requested: 'fitted' as const, models: ['lstm.any', 'logistic.any'], weights: [1, 0], bias: 0, fittedOn: { rows: 2000, positives: 0 } };
    const job = taobaoJob();
    const file = await chooseChampions({ job, folder, models, ensembles: { any: fitted }, validation, previous: { skipped: 'no earlier night' } });
    expect(JSON.parse(await readFile(championFile(folder), 'utf8'))).toEqual(file);
    const any = file.products.any!;
    expect(any).toMatchObject({ candidate: 'ensemble', source: 'this-night', models: [{ name: 'lstm.any' }, { name: 'logistic.any' }] });
    // The fitted ensemble weighs only lstm.any: the same AUC as the model, so the simpler ensemble is kept.
    expect(any.selection!.candidates.find((c) => c.name === 'ensemble')!.auc).toBe(any.selection!.candidates.find((c) => c.name === 'lstm.any')!.auc);
    expect(any.calibration.method).toBe('platt');
    expect(any.challenger).toEqual({ previous: null, decision: null, skipped: 'no earlier night' });

    const few = Int8Array.from(v.labels, (y, i) => (y === 1 && i < 40 ? 1 : 0));
    const fewPositives = few.reduce((a, b) => a + b, 0);
    expect(fewPositives).toBeLessThan(10);
    const scarce: ChampionFile = await chooseChampions({
      job,
      folder,
      models,
      ensembles: { any: fitted },
      validation: async () => ({ ...(await validation()), labels: few }),
      previous: { skipped: 'no earlier night' },
    });
    expect(scarce.products.any).toMatchObject({ candidate: 'ensemble', ensemble: { method: 'mean', weights: [0.5, 0.5] }, selection: null });
    expect(scarce.products.any!.warnings[0]).toMatch(new RegExp(`only ${fewPositives} validation buyers among 2000 customers`));

    const off = await chooseChampions({ job: { ...job, champion: { ...job.champion!, select: false } } as typeof job, folder, models, ensembles: { any: fitted }, validation, previous: { skipped: 'x' } });
    expect(off.products.any).toMatchObject({ candidate: 'ensemble', selection: null, reason: 'champion.select is off: the ensemble is published' });
  });
});
