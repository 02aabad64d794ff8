/**
 * The champion end to end, two nights of the real CLI on the Taobao sample: night 2 scores night 1's
 * published model on its own validation customers (re-preprocessed with night 1's vocabulary, scored by
 * the workers), decides against it, publishes calibrated scores with actions by share, and says which
 * model and why in the summary, report.json and each partition's manifest.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { parse, stringify } from 'yaml';
import { aucOf } from '../coordinator/ensemble/index.js';
import { alignedValidation } from '../coordinator/pipeline/evaluate-stage.js';
import { requireJson, runFiles, runFolder, type ModelsFile } from '../coordinator/pipeline/index.js';
import { championFile, type ChampionFile } from '../coordinator/pipeline/champion-stage.js';
import { loadPreviousNight } from '../coordinator/pipeline/previous-champion.js';
import { readScoreSetRows } from '../coordinator/pipeline/collect.js';
import type { PreprocessResult } from '../coordinator/preprocess/index.js';
import { loadJob } from '../jobs/job-file.js';
import type { Job } from '../jobs/job.js';
import { runCli, taobaoJob, type CliResult } from './helpers/cli.js';

const NIGHTS = ['2017-12-01', '2017-12-02'];
let dir: string;
let job: Job;
const runs: CliResult[] = [];

describe('champion and challenger over two nights', () => {
  beforeAll(async () => {
    let conf: string;
    ({ dir, conf } = await taobaoJob({
      products: { overall: true, topCategories: 0 },
      model: { architectures: ['lstm', 'attention'], epochs: 1, embeddingDim: 4, hiddenUnits: 4, denseUnits: 4, batchSize: 256 },
      shards: { count: 2 },
      cluster: { workers: 1 },
    }));
    // Actions by share: the top 5 % in store, the next 15 % by SMS.
    const raw = parse(await readFile(conf, 'utf8')) as Record<string, unknown>;
    raw.actions = [{ name: 'in_store', topShare: 0.05 }, { name: 'sms', topShare: 0.15 }];
    await writeFile(conf, stringify(raw));
    job = await loadJob(conf);
    for (const date of NIGHTS) runs.push(await runCli(['run', '--account', 'taobao', '--date', date, '--conf', conf]));
  }, 240_000);

  test('both nights succeed and the summary names each product’s champion', () => {
    for (const r of runs) {
      expect(r.stderr).not.toMatch(/internal error/);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^champion {4}any {10}(ensemble|lstm\.any|attention)( \(last published model kept\))? · calibration (platt|none) · /m);
    }
    expect(runs[0]!.stdout).not.toMatch(/last published model/);
    expect(runs[1]!.stdout).toMatch(/last published model/); // compared, whichever won
  });

  test('night 2 compared its choice with night 1’s champion on the same validation customers', async () => {
    const folder = runFolder(job, NIGHTS[1]!);
    const first = await requireJson<ChampionFile>(championFile(runFolder(job, NIGHTS[0]!)), 'evaluate', folder);
    const second = await requireJson<ChampionFile>(championFile(folder), 'evaluate', folder);
    expect(first.products.any!.challenger.skipped).toMatch(/no night before 2017-12-01 was published/);
    const any = second.products.any!;
    expect(any.challenger.previous).toEqual({
      date: NIGHTS[0],
      runId: first.runId,
      candidate: first.products.any!.candidate,
      modelVersions: first.products.any!.models.map((m) => m.modelVersion),
    });
    const cmp = any.challenger.decision!.comparison!;
    expect(cmp).not.toBeNull();

    // Recompute both sides from the files: night 1's models as the workers scored them on night 2's validation customers.
    const models = await requireJson<ModelsFile>(runFiles(folder).models, 'train', folder);
    const v = await alignedValidation(new Map(), models, 'any');
    expect(v.ids.length).toBe(any.validation.rows);
    const previous = await loadPreviousNight(folder);
    if ('skipped' in previous) throw new Error(previous.skipped);
    const old = previous.validationScores('any', v.ids);
    if ('missing' in old) throw new Error(old.missing);
    expect(old.scores.every((s) => s > 0 && s < 1)).toBe(true);
    expect(cmp.aucB).toBeCloseTo(aucOf(v.labels, old.scores)!, 10);
    expect(any.source).toBe(any.challenger.decision!.winner === 'champion' ? 'previous' : 'this-night');
    // Night 1's models scored every customer of night 2, in night 2's row order.
    const pre = await requireJson<PreprocessResult>(runFiles(folder).preprocess, 'preprocess', folder);
    const rows = await readScoreSetRows(pre.score!.shards.map((s) => s.file));
    for (const m of previous.nightModels('any', rows)) {
      expect(m.scores).toHaveLength(814);
      expect(m.scores.every((s) => s > 0 && s < 1)).toBe(true);
    }
  });

  test('the report and the manifest say which model and why, with its calibration; actions follow the shares', async () => {
    const folder = runFolder(job, NIGHTS[1]!);
    const champion = (await requireJson<ChampionFile>(championFile(folder), 'evaluate', folder)).products.any!;
    const report = JSON.parse(await readFile(path.join(folder.reportDir, 'report.json'), 'utf8'));
    const reported = report.products.find((p: { product: string }) => p.product === 'any').champion;
    expect(reported).toMatchObject({ candidate: champion.candidate, source: champion.source, reason: champion.reason, calibration: champion.calibration });
    expect(reported.published).toMatchObject({ on: 'label window', auc: expect.any(Number), meanScore: expect.any(Number) });

    const manifest = JSON.parse(await readFile(path.join(dir, 'out/predictions/account=taobao/date=2017-12-02/product=any/_manifest.json'), 'utf8'));
    expect(manifest.champion).toMatchObject({ candidate: champion.candidate, source: champion.source, reason: champion.reason, calibration: champion.calibration });
    expect(manifest.modelVersions).toEqual(champion.models.map((m) => m.modelVersion));
    expect(manifest.actionCounts).toEqual({ in_store: 40, sms: 122, none: 652 }); // ⌊0.05 · 814⌋, ⌊0.20 · 814⌋ − 40
    const record = JSON.parse(await readFile(path.join(dir, 'out/models/account=taobao/champions/date=2017-12-02.json'), 'utf8'));
    expect(record.products.any.candidate).toBe(champion.candidate);
  });
});
