/**
 * A date is committed only when all of it is: a backfill killed between two products' commits leaves a
 * date that a plain rerun completes (every product, the audiences, the export), and the successful
 * rerun removes the temporary files that killed writers left behind.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, test } from 'vitest';
import { runFolder } from '../coordinator/pipeline/index.js';
import { audienceDir, committedPartitions, dateCommitStatus, dateDir } from '../coordinator/publish/index.js';
import { loadJob } from '../jobs/job-file.js';
import { runCli, taobaoJob } from './helpers/cli.js';

const DATE = '2017-12-02';

test('a backfill killed between two products is completed by a plain rerun, which also removes killed writers\' temporary files', async () => {
  const { conf } = await taobaoJob({
    products: { overall: true, topCategories: 1 },
    model: { architectures: ['lstm'], epochs: 1, embeddingDim: 4, hiddenUnits: 4, denseUnits: 4, batchSize: 256 },
    shards: { count: 2 },
    cluster: { workers: 1 },
  });
  const job = await loadJob(conf);
  const args = ['backfill', '--account', 'taobao', '--from', DATE, '--to', DATE, '--conf', conf];

  // SIGKILL right after the first product's manifest is committed.
  const killed = await runCli(args, { env: { NEXTBUY_TEST_KILL_AT: 'after-manifest' } });
  expect(killed.code).not.toBe(0);
  const half = await committedPartitions(job.output.dir, 'taobao', DATE);
  expect(half).toHaveLength(1);
  expect((await dateCommitStatus(job.output.dir, 'taobao', DATE, runFolder(job, DATE).runId)).committed).toBe(false);

  // What killed writers leave: a half-written state file and a CSV export.
  const folder = runFolder(job, DATE);
  const exportsDir = path.join(job.output.dir, 'exports', 'account=taobao', `date=${DATE}`);
  await mkdir(exportsDir, { recursive: true });
  await writeFile(path.join(folder.dir, '.tmp-999999-0a0b0c0d0e0f-run.json'), '');
  await writeFile(path.join(exportsDir, '.tmp-999999-0a0b0c0d0e0f-predictions.csv'), 'customer_id\n');

  const again = await runCli(args);
  expect(again.stderr).toMatch(/running \(not wholly committed: .*no date commit record/);
  expect(again.code).toBe(0);
  expect(again.stdout).toMatch(new RegExp(`${DATE}  done `));

  const status = await dateCommitStatus(job.output.dir, 'taobao', DATE, folder.runId);
  expect(status).toMatchObject({ committed: true, reason: null });
  const partitions = await committedPartitions(job.output.dir, 'taobao', DATE);
  expect(partitions).toHaveLength(2);
  expect(status.products).toEqual(partitions.map((p) => p.product));
  expect(await readdir(audienceDir(job.output.dir, 'taobao', DATE))).toEqual(expect.arrayContaining(partitions.map((p) => `product=${p.product}`)));
  expect(await readdir(exportsDir)).toEqual(['predictions.csv']);
  expect((await readdir(folder.dir)).filter((f) => f.startsWith('.tmp-'))).toEqual([]);
  for (const p of partitions) expect((await readdir(path.join(dateDir(job.output.dir, 'taobao', DATE), `product=${p.product}`))).filter((f) => f.startsWith('.tmp-'))).toEqual([]);

  // And now the date is done: a third run skips it.
  const third = await runCli(args);
  expect(third.stdout).toMatch(/skipped .*already committed \(2 products\)/);
}, 300_000);
