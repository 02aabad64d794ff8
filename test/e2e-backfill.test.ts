/**
 * Backfills: every date is its own idempotent run; an interrupted backfill, run again, skips the dates
 * already committed and finishes the rest, ending with exactly one committed partition per date and product.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { expect, test } from 'vitest';
import { committedPartitions } from '../coordinator/publish/index.js';
import { loadJob } from '../jobs/job-file.js';
import { ROOT, runCli, taobaoJob } from './helpers/cli.js';

const DATES = ['2017-11-28', '2017-11-29', '2017-11-30', '2017-12-01', '2017-12-02'];

/** Starts the backfill and SIGKILLs it as soon as its first date is done. */
/** The backfill's log line (JSON: stderr is not a terminal) saying the first date is done. */
const DONE_2017_11_28 = /"event":"backfill\.date".*"date":"2017-11-28".*"status":"done: 1 partitions committed"/;

function backfillKilledAfterFirstDate(conf: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/nextbuy.js'), 'backfill', '--account', 'taobao', '--from', DATES[0]!, '--to', DATES.at(-1)!, '--conf', conf], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
      if (DONE_2017_11_28.test(stderr)) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('close', () => resolve(stderr));
  });
}

test('an interrupted backfill, run again, skips committed dates and ends with exactly 5 committed partitions per product', async () => {
  const { conf } = await taobaoJob({
    products: { overall: true, topCategories: 0 },
    model: { architectures: ['lstm'], epochs: 1, embeddingDim: 4, hiddenUnits: 4, denseUnits: 4, batchSize: 256 },
    shards: { count: 2 },
    cluster: { workers: 1 },
  });
  const job = await loadJob(conf);

  const first = await backfillKilledAfterFirstDate(conf);
  expect(first).toMatch(DONE_2017_11_28);
  const committedBefore: string[] = [];
  for (const d of DATES) if ((await committedPartitions(job.output.dir, 'taobao', d)).length > 0) committedBefore.push(d);
  expect(committedBefore.length).toBeGreaterThanOrEqual(1);
  expect(committedBefore.length).toBeLessThan(DATES.length);

  const again = await runCli(['backfill', '--account', 'taobao', '--from', DATES[0]!, '--to', DATES.at(-1)!, '--conf', conf, '--parallel', '2']);
  expect(again.code).toBe(0);
  for (const d of committedBefore) expect(again.stdout).toMatch(new RegExp(`${d}  skipped .*already committed`));
  for (const d of DATES.filter((x) => !committedBefore.includes(x))) expect(again.stdout).toMatch(new RegExp(`${d}  done `));
  expect(again.stdout).toMatch(new RegExp(`5 dates: ${5 - committedBefore.length} done, ${committedBefore.length} skipped \\(already committed\\), 0 failed`));

  for (const d of DATES) {
    const partitions = await committedPartitions(job.output.dir, 'taobao', d);
    expect(partitions.map((p) => p.product)).toEqual(['any']);
    expect(partitions[0]!.manifest.rowCount).toBeGreaterThan(700);
  }
}, 300_000);
