/**
 * One run per account and date: two `nextbuy run` started together, exactly one runs and the other exits
 * 10 touching nothing; a lock whose holder is gone (stale heartbeat, or a dead process on this host) is
 * taken over.
 */
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import { EXIT_CODES, LockedError } from '../core/errors.js';
import { acquireRunLock, lockPath } from '../coordinator/pipeline/run-lock.js';
import { runCli, taobaoJob } from './helpers/cli.js';

const DATE = '2017-12-02';

test('two nextbuy run of the same date started together: exactly one runs, the other exits 10 and says who holds the date', async () => {
  const { conf } = await taobaoJob({
    products: { overall: true, topCategories: 0 },
    model: { architectures: ['lstm'], epochs: 1, embeddingDim: 4, hiddenUnits: 4, denseUnits: 4, batchSize: 256 },
    shards: { count: 2 },
    cluster: { workers: 1 },
  });
  const args = ['run', '--account', 'taobao', '--date', DATE, '--conf', conf];
  const results = await Promise.all([runCli(args), runCli(args)]);
  const codes = results.map((r) => r.code).sort();
  expect(codes).toEqual([0, EXIT_CODES.LOCKED]);
  const refused = results.find((r) => r.code === EXIT_CODES.LOCKED)!;
  expect(refused.stderr).toMatch(/account taobao date 2017-12-02 is being run by .*nothing was touched/);
  expect(refused.stderr).not.toMatch(/internal error/);

  // Released when done: a rerun runs.
  const again = await runCli(args);
  expect(again.code).toBe(0);
}, 300_000);

async function outDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'nextbuy-lock-'));
}

test('a live lock refuses a second holder; release lets the next one in', async () => {
  const out = await outDir();
  const where = { outDir: out, account: 'a', date: DATE, command: 'run' };
  const first = await acquireRunLock(where);
  const held = JSON.parse(await readFile(first.file, 'utf8'));
  expect(held).toMatchObject({ host: os.hostname(), pid: process.pid, command: 'run' });
  expect(typeof held.heartbeatAt).toBe('string');
  await expect(acquireRunLock({ ...where, command: 'publish' })).rejects.toThrow(LockedError);
  await first.release();
  const second = await acquireRunLock({ ...where, command: 'publish' });
  await second.release();
});

test('a lock with a stale heartbeat, or held by a process of this host that is gone, is taken over', async () => {
  const out = await outDir();
  const file = lockPath(out, 'a', DATE);
  await mkdir(path.dirname(file), { recursive: true });
  const old = new Date(Date.now() - 10 * 60_000).toISOString();
  await writeFile(file, JSON.stringify({ host: 'another-host', pid: 1, command: 'run', startedAt: old, heartbeatAt: old, token: 'x' }));
  const taken = await acquireRunLock({ outDir: out, account: 'a', date: DATE, command: 'run' });
  expect(JSON.parse(await readFile(file, 'utf8')).pid).toBe(process.pid);
  await taken.release();

  const now = new Date().toISOString();
  await writeFile(file, JSON.stringify({ host: os.hostname(), pid: 2 ** 22 + 12345, command: 'run', startedAt: now, heartbeatAt: now, token: 'y' }));
  const again = await acquireRunLock({ outDir: out, account: 'a', date: DATE, command: 'run' });
  expect(JSON.parse(await readFile(file, 'utf8')).pid).toBe(process.pid);
  await again.release();

  // A fresh heartbeat from another host is respected.
  await writeFile(file, JSON.stringify({ host: 'another-host', pid: 1, command: 'backfill', startedAt: now, heartbeatAt: now, token: 'z' }));
  await expect(acquireRunLock({ outDir: out, account: 'a', date: DATE, command: 'run' })).rejects.toThrow(/another-host .*pid 1/);
});
