import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { JobFileError, PublishError } from '../core/errors.js';
import {
  exportAudiences,
  productsWithEmptyAudiences,
  publishPredictions,
  readPartition,
  type ActionRule,
} from '../coordinator/publish/index.js';
import { warnAboutEmptyAudiences } from '../coordinator/pipeline/publish-stage.js';
import type { RunSummary } from '../coordinator/pipeline/index.js';
import { compileJob } from '../jobs/job-file.js';
import { formatSummary } from '../jobs/summary.js';
import { tempRunFolder } from './helpers/champion.js';
import { parseCsv, publishOptions, sampleNight, withTempDir } from './helpers/publish.js';

const minimal = {
  account: 'shop-1',
  input: { path: 'events/*.parquet' },
  columns: { customer: 'cid', time: 'ts', eventType: 'kind', category: 'cat' },
  events: { types: ['view', 'buy'], purchase: 'buy' },
  label: { horizonDays: 7 },
};

function jobError(actions: unknown): JobFileError {
  try {
    compileJob({ ...minimal, actions }, '/jobs/shop.yaml');
  } catch (e) {
    if (e instanceof JobFileError) return e;
    throw e;
  }
  throw new Error('expected a JobFileError');
}

const emptyPublish = { predictionsDir: '/o/p', audiencesDir: '/o/a', csvFile: '/o/c.csv', partitions: [], champions: [], warnings: [] };
const emptySummary: RunSummary = {
  account: 'shop-1', date: '2017-12-02', runId: 'r', runDir: '/o/r', tasks: ['publish'],
  preprocess: null, models: null, evaluation: null, publish: null, workers: null, timings: {}, totalMs: 1,
};

const SHARES: ActionRule[] = [
  { name: 'in_store', topShare: 0.05 },
  { name: 'sms', topShare: 0.15 },
];

describe('actions as shares of customers', () => {
  test('the job file takes topShare, keeps the listed order, and fills the defaults of the champion and calibration', () => {
    const job = compileJob({ ...minimal, actions: [{ name: 'in_store', topShare: 0.05 }, { name: 'sms', topShare: 0.15 }] }, '/jobs/shop.yaml');
    expect(job.actions).toEqual(SHARES);
    expect(job.champion).toEqual({ select: true, compareWithPrevious: true, minValidationPositives: 10, resamples: 400 });
    expect(job.calibration).toEqual({ method: 'platt' });
    // Listed smallest share first: still in the job's order (the first listed takes the top).
    expect(compileJob({ ...minimal, actions: [{ name: 'sms', topShare: 0.15 }, { name: 'in_store', topShare: 0.05 }] }, '/j.yaml').actions.map((a) => a.name)).toEqual([
      'sms',
      'in_store',
    ]);
  });

  test.each([
    [[{ name: 'sms', minScore: 0.2, topShare: 0.1 }], 'actions[0]', 'gives both minScore and topShare'],
    [[{ name: 'sms' }], 'actions[0]', 'needs minScore'],
    [[{ name: 'sms', topShare: 0.1 }, { name: 'call', minScore: 0.5 }], 'actions', 'mixes topShare and minScore (e.g. "sms" and "call")'],
    [[{ name: 'a', topShare: 0.6 }, { name: 'b', topShare: 0.5 }], 'actions', 'topShare values sum to 1.1, more than 1'],
    [[{ name: 'a', topShare: 0 }], 'actions[0].topShare', 'must be > 0'],
    [[{ name: 'a', topShare: 1.5 }], 'actions[0].topShare', 'must be ≤ 1'],
    [[{ name: 'a', topShare: '5%' }], 'actions[0].topShare', 'a share of customers in (0, 1]'],
  ])('rejects %j naming the field', (actions, field, message) => {
    const e = jobError(actions);
    expect(e.field).toBe(field);
    expect(e.message).toContain(`/jobs/shop.yaml: ${field} `);
    expect(e.message).toContain(message);
  });

  test('shares summing to exactly 1 in decimals are accepted', () => {
    const actions = [{ name: 'a', topShare: 0.1 }, { name: 'b', topShare: 0.2 }, { name: 'c', topShare: 0.7 }];
    expect(compileJob({ ...minimal, actions }, '/j.yaml').actions).toEqual(actions);
  });

  test('the top 5 % get the first action and the next 15 % the second, per product, by rank', async () => {
    await withTempDir(async (out) => {
      const night = sampleNight({ customers: 1000, products: ['any', 'shoes'], seed: 11 });
      const result = await publishPredictions(publishOptions(out, night, { actions: SHARES }));
      for (const p of result.partitions) {
        expect(p.manifest.actionCounts).toEqual({ in_store: 50, sms: 150, none: 800 });
        expect(p.manifest.actions).toEqual([
          { name: 'in_store', topShare: 0.05, upToRank: 50 },
          { name: 'sms', topShare: 0.15, upToRank: 200 },
        ]);
        const { rows } = (await readPartition(out, 'shop-1', '2017-12-02', p.product))!;
        const expected = (rank: number) => (rank <= 50 ? 'in_store' : rank <= 200 ? 'sms' : 'none');
        expect(rows.every((r) => r.action === expected(r.rank))).toBe(true);
        // By rank, not by score: the scores have ties (3 decimals) and the cut still takes exactly 50.
        expect(rows.filter((r) => r.action === 'in_store')).toHaveLength(50);
      }
    });
  });

  test('ties at the cut are broken by customer id, the same way on every rerun', async () => {
    await withTempDir(async (out) => {
      const ids = ['c5', 'c3', 'c1', 'c4', 'c2', 'c0', 'c9', 'c8', 'c7', 'c6'];
      const flat = [{ product: 'any', customerIds: ids, scores: new Float32Array(10).fill(0.3), modelVersions: ['m'] }];
      await publishPredictions(publishOptions(out, flat, { actions: [{ name: 'call', topShare: 0.2 }, { name: 'sms', topShare: 0.1 }] }));
      const { rows } = (await readPartition(out, 'shop-1', '2017-12-02', 'any'))!;
      expect(rows.filter((r) => r.action !== 'none').map((r) => [r.customer_id, r.action])).toEqual([
        ['c0', 'call'],
        ['c1', 'call'],
        ['c2', 'sms'],
      ]);
    });
  });

  test('audiences follow the shares; a product whose audiences are all empty is named', async () => {
    await withTempDir(async (out) => {
      const [any] = sampleNight({ customers: 40, products: ['any'], seed: 3 });
      // 2 % of 40 customers is 0.8: nobody.
      await publishPredictions(publishOptions(out, [any!], { actions: [{ name: 'in_store', topShare: 0.02 }] }));
      const tiny = await exportAudiences({ outDir: out, account: 'shop-1', date: '2017-12-02', formats: ['csv'] });
      expect(tiny.audiences).toEqual([expect.objectContaining({ product: 'any', action: 'in_store', rows: 0 })]);
      expect(productsWithEmptyAudiences(tiny.audiences)).toEqual(['any']);

      await publishPredictions(publishOptions(out, [any!], { actions: [{ name: 'in_store', topShare: 0.1 }, { name: 'sms', topShare: 0.25 }] }));
      const fine = await exportAudiences({ outDir: out, account: 'shop-1', date: '2017-12-02', formats: ['csv'] });
      expect(fine.audiences.map((a) => [a.action, a.rows])).toEqual([['in_store', 4], ['sms', 10]]);
      expect(productsWithEmptyAudiences(fine.audiences)).toEqual([]);
      const sms = parseCsv(await readFile(fine.audiences[1]!.files.csv!, 'utf8'));
      expect(sms.map((r) => Number(r.rank))).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
      expect(path.basename(fine.audiences[1]!.files.csv!)).toBe('sms.csv');
    });
  });

  test('the run warns about such a product in the log, its summary and report.json', async () => {
    const folder = await tempRunFolder();
    await mkdir(folder.reportDir, { recursive: true });
    const reportFile = path.join(folder.reportDir, 'report.json');
    await writeFile(reportFile, JSON.stringify({ formatVersion: 1, products: [{ product: 'any' }, { product: 'shoes' }] }));
    const lines: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => (lines.push(String(chunk)), true)) as typeof process.stderr.write;
    let warnings: string[];
    try {
      warnings = await warnAboutEmptyAudiences(folder, ['shoes']);
    } finally {
      process.stderr.write = write;
    }
    expect(warnings).toEqual([expect.stringMatching(/^product shoes: every audience is empty .*give actions as topShare$/)]);
    expect(lines.join('')).toMatch(/publish\.empty_audiences/);
    const report = JSON.parse(await readFile(reportFile, 'utf8'));
    expect(report.products).toEqual([{ product: 'any' }, { product: 'shoes', warnings }]);
    expect(formatSummary({ ...emptySummary, publish: { ...emptyPublish, warnings } })).toContain(`warning     ${warnings[0]}`);
  });

  test('publish itself refuses mixed or oversized share rules', async () => {
    await withTempDir(async (out) => {
      const night = sampleNight({ customers: 10, products: ['any'], seed: 1 });
      const mixed = [{ name: 'a', topShare: 0.1 }, { name: 'b', minScore: 0.5 }] as ActionRule[];
      await expect(publishPredictions(publishOptions(out, night, { actions: mixed }))).rejects.toThrow(PublishError);
      await expect(publishPredictions(publishOptions(out, night, { actions: [{ name: 'a', topShare: 0.7 }, { name: 'b', topShare: 0.4 }] }))).rejects.toThrow(
        /sum to 1\.1.*more than 1/,
      );
    });
  });
});
