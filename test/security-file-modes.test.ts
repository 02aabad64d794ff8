/**
 * Private by default: under the usual umask 022, everything a run writes (run folder, shards, quarantine,
 * checkpoints, models, scores, report, predictions, audiences, export) is 0600 / 0700, and the published
 * table takes output.publishedMode (e.g. 0640 / 0750 for a warehouse loader's group) exactly, whatever the umask.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, test } from 'vitest';
import { formatMode, makeDir, modesOf } from '../core/file-modes.js';
import { JobFileError } from '../core/errors.js';
import { compileJob } from '../jobs/job-file.js';
import { runCli } from './helpers/cli.js';
import { TINY_DATE, tinyJob, walkTree, writeTinyRun, type TreeEntry } from './helpers/tiny-run.js';

const dirs: string[] = [];
let savedUmask: number;

beforeEach(() => {
  savedUmask = process.umask(0o022); // the CLI's child process inherits it
});
afterEach(() => {
  process.umask(savedUmask);
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-modes-'));
  dirs.push(d);
  return d;
}

/** Runs the CLI on the tiny fixture with `output` merged into the job; returns every entry under out/. */
async function runWith(output: Record<string, unknown>, umask = 0o022): Promise<TreeEntry[]> {
  const dir = await tempDir();
  const conf = await writeTinyRun(dir, { categories: ['k0', 'k1'], unknownEvents: 2 }, tinyJob(2, { output: { dir: 'out', ...output } }));
  process.umask(umask);
  const r = await runCli(['run', '--account', 'acme', '--date', TINY_DATE, '--conf', conf]);
  expect(r.stderr.split('\n').filter((l) => l.startsWith('nextbuy:'))).toEqual([]);
  expect(r.code).toBe(0);
  return [{ path: '.', kind: 'dir', mode: (await walkTree(dir)).find((e) => e.path === 'out')!.mode }, ...(await walkTree(path.join(dir, 'out')))];
}

/** Entries whose mode has a bit `allowed` lacks, as "path mode" lines (empty when all are within). */
function wider(entries: TreeEntry[], allowed: (e: TreeEntry) => number): string[] {
  return entries.filter((e) => (e.mode & ~allowed(e)) !== 0).map((e) => `${e.path} ${formatMode(e.mode)} (allowed ${formatMode(allowed(e))})`);
}

describe('file modes of a whole run', () => {
  test('by default, under umask 022, every file is at most 0600 and every folder at most 0700', async () => {
    const entries = await runWith({});
    for (const part of ['runs', 'predictions', 'audiences', 'exports', 'models']) expect(entries.some((e) => e.path.startsWith(`${part}${path.sep}`))).toBe(true);
    for (const kind of ['quarantine.parquet', 'shard-0.arrow', 'model.onnx', 'weights.f32', 'report.html', '_manifest.json', 'in_store.csv', 'predictions.csv']) {
      expect(entries.some((e) => path.basename(e.path) === kind), kind).toBe(true);
    }
    expect(wider(entries, (e) => (e.kind === 'dir' ? 0o700 : 0o600))).toEqual([]);
    expect(entries.filter((e) => e.kind === 'other')).toEqual([]);
  }, 120_000);

  test('output.publishedMode 0640 gives the table to the group (0640 / 0750) even under umask 077; the rest stays private', async () => {
    const entries = await runWith({ publishedMode: '0640' }, 0o077);
    const published = (e: TreeEntry) => e.path === '.' || e.path === 'predictions' || e.path.startsWith(`predictions${path.sep}`);
    for (const e of entries.filter(published)) expect(`${e.path} ${formatMode(e.mode)}`).toBe(`${e.path} ${e.kind === 'dir' ? '0750' : '0640'}`);
    expect(entries.filter(published).some((e) => e.path.endsWith('.parquet'))).toBe(true);
    expect(wider(entries.filter((e) => !published(e)), (e) => (e.kind === 'dir' ? 0o700 : 0o600))).toEqual([]);
  }, 120_000);

  test('output.mode sets everything a run writes, scores written as workers answer included', async () => {
    const entries = await runWith({ mode: '0640' });
    const notExactly = entries.filter((e) => e.mode !== (e.kind === 'dir' ? 0o750 : 0o640)).map((e) => `${e.path} ${formatMode(e.mode)}`);
    expect(notExactly).toEqual([]);
  }, 120_000);
});

describe('makeDir', () => {
  test('sets every folder it creates to the mode exactly, and leaves folders that existed alone', async () => {
    const dir = await tempDir();
    process.umask(0o077);
    await makeDir(path.join(dir, 'a', 'b', 'c'), modesOf(0o640));
    const entries = await walkTree(dir);
    expect(entries.map((e) => `${e.path} ${formatMode(e.mode)}`)).toEqual(['a 0750', 'a/b 0750', 'a/b/c 0750']);
    await makeDir(path.join(dir, 'a', 'b', 'd'));
    expect((await walkTree(dir)).map((e) => `${e.path} ${formatMode(e.mode)}`)).toEqual(['a 0750', 'a/b 0750', 'a/b/c 0750', 'a/b/d 0700']);
  });
});

describe('output.mode and output.publishedMode in the job file', () => {
  const job = (output: Record<string, unknown>) => compileJob({ ...tinyJob(0), output }, '/jobs/acme/job.yaml');

  test('default to private, and publishedMode to output.mode', () => {
    expect(job({}).output.mode).toEqual({ file: 0o600, dir: 0o700 });
    expect(job({}).output.publishedMode).toEqual({ file: 0o600, dir: 0o700 });
    expect(job({ mode: '0640' }).output.publishedMode).toEqual({ file: 0o640, dir: 0o750 });
    expect(job({ publishedMode: '644' }).output.publishedMode).toEqual({ file: 0o644, dir: 0o755 });
  });

  test.each([
    [640, 'an octal file mode in quotes'],
    ['0o640', 'an octal file mode in quotes'],
    ['0400', 'owner read and write'],
    ['0750', 'no execute bits'],
    ['0666', 'must not let everyone write'],
  ])('%j is refused (%s)', (mode, why) => {
    expect(() => job({ mode })).toThrow(JobFileError);
    expect(() => job({ mode })).toThrow(why);
    expect(() => job({ publishedMode: mode })).toThrow(/output\.publishedMode/);
  });
});
