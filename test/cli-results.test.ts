/**
 * Machine-readable results: `nextbuy run --json` prints the run's summary (and only it) on stdout, the same
 * object the run folder's summary.json holds; `nextbuy backfill --json` prints one JSON object per date.
 * One real run on the bundled sample, reused: its folder, copied elsewhere (a moved checkout), still counts
 * as committed there, because the run id does not depend on where the job file and data lie.
 */
import { cp, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import { runCli, taobaoJob } from './helpers/cli.js';

const DATE = '2017-12-02';

test('run --json prints summary.json; backfill --json from a moved copy finds the date committed', async () => {
  const { dir, conf } = await taobaoJob({
    products: { overall: true, topCategories: 0 },
    model: { architectures: ['logistic'], epochs: 1, batchSize: 256 },
    shards: { count: 2 },
    cluster: { workers: 1 },
  });
  const run = await runCli(['run', '--account', 'taobao', '--date', DATE, '--conf', conf, '--json']);
  expect(run.code, run.stderr).toBe(0);
  const printed = JSON.parse(run.stdout) as Record<string, any>;
  const runDir = path.join(dir, 'out/runs/account=taobao', `date=${DATE}`);
  expect(JSON.parse(await readFile(path.join(runDir, 'summary.json'), 'utf8'))).toEqual(printed);
  expect(printed).toMatchObject({ formatVersion: 1, account: 'taobao', date: DATE, runDir, tasks: ['preprocess', 'train', 'score', 'evaluate', 'publish'] });
  expect(printed.runId).toMatch(/^taobao-20171202-[0-9a-f]{10}$/);
  expect(printed.preprocess.stats.rowsRead).toBe(84_287);
  expect(printed.preprocess.vocabularySizes.item).toBeGreaterThan(100);
  expect(printed.preprocess.vocabulary).toBeUndefined();
  expect(printed.publish.partitions.map((p: { product: string }) => p.product)).toEqual(['any']);
  expect(printed.evaluation.products[0].product).toBe('any');
  expect(printed.totalMs).toBeGreaterThan(0);

  const moved = path.join(await mkdtemp(path.join(os.tmpdir(), 'nextbuy-moved-')), 'checkout');
  await cp(dir, moved, { recursive: true });
  const committed = await runCli(['backfill', '--account', 'taobao', '--from', DATE, '--to', DATE, '--conf', path.join(moved, 'job.yaml'), '--json']);
  expect(committed.code, committed.stderr).toBe(0);
  const lines = committed.stdout.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(JSON.parse(lines[0]!)).toEqual({
    date: DATE, status: 'skipped', detail: 'already committed (1 products)', ms: 0, exitCode: 0,
    runId: printed.runId, runDir: path.join(moved, 'out/runs/account=taobao', `date=${DATE}`),
  });
}, 180_000);
