/**
 * Champion / challenger across nights: this night's choice replaces the last published model only when
 * it is not worse beyond noise on the same validation customers; otherwise the last published model
 * scores the night, and champion.json (then the report and the manifest) says which and why.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { applyCalibration, decideChallenger, fitPlattCalibration } from '../coordinator/ensemble/index.js';
import { chooseChampions, publishedScores, type ChampionFile } from '../coordinator/pipeline/champion-stage.js';
import { championsDir, lastPublishedBefore, type PreviousNight } from '../coordinator/pipeline/previous-champion.js';
import type { ModelsFile } from '../coordinator/pipeline/index.js';
import { tempRunFolder, validationCustomers } from './helpers/champion.js';
import { taobaoJob } from './helpers/preprocess.js';

describe('the decision', () => {
  const v = validationCustomers(3000, 31);
  const strong = v.view({ noise: 0.3, seed: 1 });

  test('worse beyond noise: the last published model keeps scoring', () => {
    const d = decideChallenger(v.labels, v.view({ noise: 2, seed: 2 }), strong);
    expect(d.winner).toBe('champion');
    expect(d.comparison!.upper).toBeLessThan(0);
    expect(d.reason).toMatch(/worse beyond noise than the last published model .*the last published model scores the night/);
  });

  test('not worse beyond noise (or better): the new one replaces it', () => {
    const slightly = decideChallenger(v.labels, v.view({ noise: 0.35, seed: 3 }), strong);
    expect(slightly.comparison!.difference).toBeLessThan(0); // the premise: a little worse on these customers
    expect(slightly.winner).toBe('challenger');
    expect(decideChallenger(v.labels, strong, v.view({ noise: 2, seed: 4 })).winner).toBe('challenger');
  });

  test('too few validation buyers: no comparison, the new one is published', () => {
    const labels = new Int8Array(200);
    labels[3] = 1;
    const d = decideChallenger(labels, new Float32Array(200).fill(0.1), Float32Array.from(labels, (y) => y));
    expect(d).toMatchObject({ winner: 'challenger', comparison: null, reason: expect.stringMatching(/only 1 validation buyers/) });
  });
});

describe('in the pipeline', () => {
  const models: ModelsFile = {
    runId: 'tonight',
    trainedAsOf: '2017-11-30',
    products: ['any'],
    models: [{ name: 'lstm.any', architecture: 'lstm', product: 'any', modelVersion: 'lstm.any-new', dir: '/m/new', bestEpoch: 1, validationAuc: 0.6, history: [], search: null }],
  };
  const lastNight: ChampionFile = {
    date: '2017-12-01',
    runId: 'last-night',
    products: {
      any: {
        product: 'any',
        candidate: 'lstm.any',
        source: 'this-night',
        reason: 'best',
        warnings: [],
        models: [{ name: 'lstm.any', modelVersion: 'lstm.any-old', dir: '/m/old' }],
        ensemble: null,
        calibration: { method: 'none', reason: 'x' },
        selection: null,
        challenger: { previous: null, decision: null, skipped: 'first night' },
        validation: { rows: 0, positives: 0 },
      },
    },
  };
  const v = validationCustomers(3000, 41);
  const previousNight = (scores: Float32Array, night: Float32Array): PreviousNight => ({
    record: lastNight,
    validationScores: (_product, ids) => ({ scores: Float32Array.from(ids, (id) => scores[v.ids.indexOf(id)]!) }),
    nightModels: () => [{ name: 'lstm.any', scores: night }],
  });
  const choose = async (tonight: Float32Array, previous: PreviousNight) =>
    chooseChampions({
      job: taobaoJob(),
      folder: await tempRunFolder(),
      models,
      ensembles: { any: { method: 'mean', requested: 'mean', models: ['lstm.any'], weights: [1], fittedOn: { rows: 3000, positives: 0 } } },
      validation: async () => ({ ids: v.ids, labels: v.labels, models: [{ name: 'lstm.any', modelVersion: 'lstm.any-new', scores: tonight }] }),
      previous,
    });

  test("a worse night keeps last night's model, calibrated on its own validation scores, and says why", async () => {
    const old = v.view({ noise: 0.3, seed: 5, shift: 1 });
    const file = await choose(v.view({ noise: 2, seed: 6 }), previousNight(old, Float32Array.of(0.2, 0.9)));
    const any = file.products.any!;
    expect(any).toMatchObject({
      source: 'previous',
      candidate: 'lstm.any',
      models: [{ modelVersion: 'lstm.any-old', dir: '/m/old' }],
      challenger: { previous: { date: '2017-12-01', runId: 'last-night', modelVersions: ['lstm.any-old'] }, decision: { winner: 'champion' }, skipped: null },
    });
    expect(any.reason).toMatch(/the last published model scores the night/);
    expect(any.calibration).toEqual(fitPlattCalibration(v.labels, old));
    // The night is scored by last night's models' scores of tonight's customers.
    expect(publishedScores(any, [{ name: 'lstm.any', scores: Float32Array.of(0.5, 0.5) }], [{ name: 'lstm.any', scores: Float32Array.of(0.2, 0.9) }])).toEqual(
      applyCalibration(any.calibration, Float32Array.of(0.2, 0.9)),
    );
  });

  test('a night as good within noise replaces it', async () => {
    // Consecutive nights' models err alike: the same noise draw, a little more of it tonight.
    const tonight = v.view({ noise: 0.33, seed: 8 });
    const old = v.view({ noise: 0.3, seed: 8 });
    const file = await choose(tonight, previousNight(old, new Float32Array(2)));
    expect(file.products.any!.challenger.decision!.comparison!.difference).toBeLessThan(0); // the premise: a little worse
    expect(file.products.any).toMatchObject({ source: 'this-night', models: [{ modelVersion: 'lstm.any-new' }], challenger: { decision: { winner: 'challenger' } } });
    expect(file.products.any!.reason).toMatch(/it replaces it/);
  });

  test('the last published night is the latest one before the date, whatever was published after it', async () => {
    const folder = await tempRunFolder();
    const dir = championsDir(folder.outDir, 'shop-1');
    await mkdir(dir, { recursive: true });
    for (const date of ['2017-11-29', '2017-12-01', '2017-12-02', '2017-12-05']) {
      await writeFile(path.join(dir, `date=${date}.json`), JSON.stringify({ ...lastNight, date }));
    }
    expect((await lastPublishedBefore(folder.outDir, 'shop-1', '2017-12-02'))!.date).toBe('2017-12-01');
    expect((await lastPublishedBefore(folder.outDir, 'shop-1', '2017-12-10'))!.date).toBe('2017-12-05');
    expect(await lastPublishedBefore(folder.outDir, 'shop-1', '2017-11-29')).toBeNull();
    expect(await lastPublishedBefore(folder.outDir, 'other', '2017-12-02')).toBeNull();
  });
});
