/**
 * Run ids come from the job's settings and the input's content fingerprint, not from where the job file
 * and data lie: a moved checkout or another mount of the same data gets the same run id (and so finds its
 * committed dates: see cli-results.test.ts), while other data or other settings get another one.
 */
import { appendFile, cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import { parse, stringify } from 'yaml';
import { runFolder } from '../coordinator/pipeline/index.js';
import { loadJob } from '../jobs/job-file.js';
import { taobaoJob } from './helpers/cli.js';

const DATE = '2017-12-02';

test('the same job file and data in two folders give the same run id', async () => {
  const a = await taobaoJob();
  const b = path.join(await mkdtemp(path.join(os.tmpdir(), 'nextbuy-moved-')), 'checkout');
  await cp(a.dir, b, { recursive: true }); // new modification times, as a fresh checkout or copy has
  const first = runFolder(await loadJob(a.conf), DATE);
  const second = runFolder(await loadJob(path.join(b, 'job.yaml')), DATE);
  expect(second.dir).not.toBe(first.dir);
  expect(second.runId).toBe(first.runId);
});

test('data in a folder given by an absolute path, mounted elsewhere, keeps the run id', async () => {
  const ids: string[] = [];
  for (const mount of ['mnt-a', 'mnt-b']) {
    const { dir, conf } = await taobaoJob();
    const data = path.join(dir, mount, 'events');
    await cp(path.join(dir, 'events.csv.gz'), path.join(data, 'events.csv.gz'));
    const job = parse(await readFile(conf, 'utf8')) as Record<string, Record<string, unknown>>;
    job.input = { ...job.input, path: data, format: 'csv' };
    await writeFile(conf, stringify(job));
    ids.push(runFolder(await loadJob(conf), DATE).runId);
  }
  expect(ids[1]).toBe(ids[0]);
});

test('other input data or other settings give another run id; where outputs go and worker counts do not', async () => {
  const { dir, conf } = await taobaoJob();
  const base = runFolder(await loadJob(conf), DATE).runId;

  const job = parse(await readFile(conf, 'utf8')) as Record<string, Record<string, unknown>>;
  await writeFile(conf, stringify({ ...job, output: { dir: 'elsewhere' }, cluster: { ...job.cluster, workers: 3 } }));
  expect(runFolder(await loadJob(conf), DATE).runId).toBe(base);

  await writeFile(conf, stringify({ ...job, label: { horizonDays: 3 } }));
  const otherSettings = runFolder(await loadJob(conf), DATE).runId;
  expect(otherSettings).not.toBe(base);

  await writeFile(conf, stringify(job));
  await appendFile(path.join(dir, 'events.csv.gz'), Buffer.alloc(1));
  const otherData = runFolder(await loadJob(conf), DATE).runId;
  expect(otherData).not.toBe(base);
  expect(otherData).not.toBe(otherSettings);
});

test('an output folder inside the input folder does not count as input', async () => {
  const { dir, conf } = await taobaoJob();
  await cp(path.join(dir, 'events.csv.gz'), path.join(dir, 'data/events.csv.gz'));
  const job = parse(await readFile(conf, 'utf8')) as Record<string, Record<string, unknown>>;
  await writeFile(conf, stringify({ ...job, input: { ...job.input, path: 'data', format: 'csv' }, output: { dir: 'data/out' } }));
  const before = runFolder(await loadJob(conf), DATE).runId;
  await cp(path.join(dir, 'events.csv.gz'), path.join(dir, 'data/out/runs/something.arrow'));
  expect(runFolder(await loadJob(conf), DATE).runId).toBe(before);
  await cp(path.join(dir, 'events.csv.gz'), path.join(dir, 'data/more.csv.gz'));
  expect(runFolder(await loadJob(conf), DATE).runId).not.toBe(before);
});
