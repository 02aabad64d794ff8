/**
 * Retention: `nextbuy gc` and `output.retain` remove run folders and exports older than N days, and
 * nothing else: never the published tables or audiences, never the latest committed date, never a
 * date whose lock is held, never a run folder whose models are still in use; a committed date whose
 * export went stays committed; a dry run removes nothing; the setting applies after a real run.
 */
import { access, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterEach, describe, expect, test } from 'vitest';
import { EXIT_CODES, JobFileError } from '../core/errors.js';
import { applyRetention } from '../coordinator/pipeline/index.js';
import { acquireRunLock, lockPath, type RunLock } from '../coordinator/pipeline/run-lock.js';
import { dateCommitPath, dateCommitStatus } from '../coordinator/publish/index.js';
import { compileJob } from '../jobs/job-file.js';
import { runCli } from './helpers/cli.js';
import { snapshotTree } from './helpers/publish.js';
import { ACCOUNT, fakeNight, type FakeNight } from './helpers/retention.js';
import { TINY_DATE, tinyJob, writeTinyRun } from './helpers/tiny-run.js';

const TODAY = '2024-05-10';
const exists = (p: string) => access(p).then(() => true, () => false);
const locks: RunLock[] = [];
afterEach(async () => {
  for (const l of locks.splice(0)) await l.release();
});

/**
 * 04-01 and 04-10 (committed) are old and free; 04-20 is old but the latest committed date; 04-24 is old
 * but locked; 04-26 is exactly 14 days old (not more); 05-08 is recent.
 */
async function nights(outDir: string): Promise<Record<string, FakeNight>> {
  const all = [
    await fakeNight(outDir, '2024-04-01'),
    await fakeNight(outDir, '2024-04-10', { committed: true }),
    await fakeNight(outDir, '2024-04-20', { committed: true }),
    await fakeNight(outDir, '2024-04-24'),
    await fakeNight(outDir, '2024-04-26'),
    await fakeNight(outDir, '2024-05-08'),
  ];
  locks.push(await acquireRunLock({ outDir, account: ACCOUNT, date: '2024-04-24', command: 'run' }));
  return Object.fromEntries(all.map((n) => [n.date, n]));
}

const tempOut = () => mkdtemp(path.join(os.tmpdir(), 'nextbuy-retention-'));
const published = async (outDir: string) => ({
  ...(await snapshotTree(path.join(outDir, 'predictions'))),
  ...(await snapshotTree(path.join(outDir, 'audiences'))),
});

describe('gc', () => {
  test('removes exactly the old, unlocked run folders and exports, keeps the rest, and says what it freed', async () => {
    const out = await tempOut();
    const n = await nights(out);
    const before = await published(out);

    const r = await applyRetention({ outDir: out, account: ACCOUNT, runsDays: 14, exportsDays: 14, today: TODAY });

    expect(r.removed.map((e) => `${e.kind} ${e.date}`).sort()).toEqual(['export 2024-04-01', 'export 2024-04-10', 'run 2024-04-01', 'run 2024-04-10']);
    expect(r.kept.map((e) => `${e.kind} ${e.date}: ${e.kept}`).sort()).toEqual([
      'export 2024-04-20: the latest committed date',
      'export 2024-04-24: locked: a run of this date is in progress',
      'run 2024-04-20: the latest committed date',
      'run 2024-04-24: locked: a run of this date is in progress',
    ]);
    expect(r.freedBytes).toBe(2 * (n['2024-04-01']!.runBytes + n['2024-04-01']!.exportBytes));
    for (const d of ['2024-04-01', '2024-04-10']) {
      expect(await exists(n[d]!.runDir)).toBe(false);
      expect(await exists(n[d]!.exportDir)).toBe(false);
    }
    for (const d of ['2024-04-20', '2024-04-24', '2024-04-26', '2024-05-08']) {
      expect(await exists(n[d]!.runDir)).toBe(true);
      expect(await exists(n[d]!.exportDir)).toBe(true);
    }
    // The published tables and audiences are untouched (the commit record only notes the removed export).
    const after = await published(out);
    const record = path.relative(path.join(out, 'predictions'), dateCommitPath(out, ACCOUNT, '2024-04-10'));
    expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
    expect({ ...after, [record]: '' }).toEqual({ ...before, [record]: '' });
    // The gc took each date's lock and gave it back; the run's lock is still the run's.
    expect((await readdir(path.join(out, 'runs', `account=${ACCOUNT}`))).filter((f) => f.endsWith('.lock'))).toEqual(['date=2024-04-24.lock']);
  });

  test('a committed date whose export retention removed still counts as committed (run and backfill do not redo it)', async () => {
    const out = await tempOut();
    const n = await nights(out);
    await applyRetention({ outDir: out, account: ACCOUNT, runsDays: null, exportsDays: 14, today: TODAY });
    expect(await exists(n['2024-04-10']!.exportDir)).toBe(false);
    expect(await exists(n['2024-04-10']!.runDir)).toBe(true);
    const status = await dateCommitStatus(out, ACCOUNT, '2024-04-10', n['2024-04-10']!.runId);
    expect(status).toMatchObject({ committed: true, reason: null, products: ['overall'] });
    const record = JSON.parse(await readFile(dateCommitPath(out, ACCOUNT, '2024-04-10'), 'utf8'));
    expect(typeof record.exportsRemovedAt).toBe('string');
  });

  test('a dry run removes nothing and lists what a real one would remove', async () => {
    const out = await tempOut();
    await nights(out);
    const before = await snapshotTree(out);
    const dry = await applyRetention({ outDir: out, account: ACCOUNT, runsDays: 14, exportsDays: 14, today: TODAY, dryRun: true });
    expect(await snapshotTree(out)).toEqual(before);
    const real = await applyRetention({ outDir: out, account: ACCOUNT, runsDays: 14, exportsDays: 14, today: TODAY });
    expect(dry.removed.map((e) => [e.kind, e.date, e.bytes])).toEqual(real.removed.map((e) => [e.kind, e.date, e.bytes]));
    expect(dry.freedBytes).toBe(real.freedBytes);
  });

  test('a stale lock (its process is gone) does not keep a date: gc takes it over, and the dry run says the same', async () => {
    const out = await tempOut();
    const night = await fakeNight(out, '2024-04-01');
    const lock = lockPath(out, ACCOUNT, '2024-04-01');
    const now = new Date().toISOString();
    await writeFile(lock, JSON.stringify({ host: os.hostname(), pid: 2 ** 22 + 1, command: 'run', startedAt: now, heartbeatAt: now, token: 'gone' }));
    const dry = await applyRetention({ outDir: out, account: ACCOUNT, runsDays: 14, exportsDays: null, today: TODAY, dryRun: true });
    expect(dry.removed.map((e) => e.date)).toEqual(['2024-04-01']);
    await applyRetention({ outDir: out, account: ACCOUNT, runsDays: 14, exportsDays: null, today: TODAY });
    expect(await exists(night.runDir)).toBe(false);
    expect(await exists(lock)).toBe(false);
  });

  test('a run folder holding the models latest.json names is kept (scoring-only nights load them)', async () => {
    const out = await tempOut();
    const n = await nights(out);
    const latest = path.join(out, 'models', `account=${ACCOUNT}`, 'latest.json');
    await mkdir(path.dirname(latest), { recursive: true });
    await writeFile(latest, JSON.stringify({ runId: 'x', trainedAsOf: '2024-03-31', products: ['overall'], models: [{ dir: path.join(n['2024-04-01']!.runDir, 'models', 'lstm-v1') }] }));
    const r = await applyRetention({ outDir: out, account: ACCOUNT, runsDays: 14, exportsDays: 14, today: TODAY });
    expect(await exists(n['2024-04-01']!.runDir)).toBe(true);
    expect(await exists(n['2024-04-01']!.exportDir)).toBe(false);
    expect(r.kept).toContainEqual(expect.objectContaining({ kind: 'run', date: '2024-04-01', kept: expect.stringMatching(/latest\.json/) }));
  });

  test('the CLI: --dry-run, --older-than, output.retain, and a usage error when no age is given', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-gc-cli-'));
    const out = path.join(dir, 'out');
    const n = await nights(out);
    const conf = await writeTinyRun(dir, {}, tinyJob(0));
    const gc = (...extra: string[]) => runCli(['gc', '--account', ACCOUNT, '--conf', conf, '--date', TODAY, ...extra]);

    const none = await gc();
    expect(none.code).toBe(EXIT_CODES.USAGE);
    expect(none.stderr).toMatch(/nothing to remove: pass --older-than N \(e\.g\. 30d\) or set output\.retain in .*job\.yaml/);

    const dry = await gc('--older-than', '14d', '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/would remove run 2024-04-01 {2}3\.0 kB/);
    expect(dry.stdout).toMatch(/dry run: would free 7\.0 kB: 2 run folder\(s\), 2 export folder\(s\) of account acme \(as of 2024-05-10\)/);
    expect(await exists(n['2024-04-01']!.runDir)).toBe(true);

    // output.retain from the job file: runs kept 30 days here, exports 14.
    await writeFile(conf, stringify(tinyJob(0, { output: { dir: 'out', retain: { runsDays: 30, exportsDays: 14 } } })));
    const real = await gc();
    expect(real.code).toBe(0);
    expect(real.stdout).toMatch(/freed 4\.0 kB: 1 run folder\(s\), 2 export folder\(s\)/);
    expect(await exists(n['2024-04-01']!.runDir)).toBe(false);
    expect(await exists(n['2024-04-10']!.runDir)).toBe(true);
    expect(await exists(n['2024-04-10']!.exportDir)).toBe(false);

    const json = await gc('--older-than', '1d', '--dry-run', '--json');
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout);
    expect(parsed).toMatchObject({ account: ACCOUNT, today: TODAY, dryRun: true, freedBytes: 3 * 3000 + 2 * 500 });
    expect(parsed.removed.map((e: { kind: string; date: string }) => `${e.kind} ${e.date}`).sort()).toEqual([
      'export 2024-04-26', 'export 2024-05-08', 'run 2024-04-10', 'run 2024-04-26', 'run 2024-05-08',
    ]);

    const bad = await gc('--older-than', 'a month');
    expect(bad.code).toBe(EXIT_CODES.USAGE);
    expect(bad.stderr).toMatch(/--older-than must be a whole number of days ≥ 1, like 30d, got "a month"/);
  }, 60_000);
});

describe('output.retain in the job file', () => {
  const job = (retain: unknown) => compileJob({ ...tinyJob(0), output: { dir: 'out', retain } }, '/jobs/acme/job.yaml');
  const message = (retain: unknown) => {
    try {
      job(retain);
    } catch (e) {
      if (e instanceof JobFileError) return e.message;
      throw e;
    }
    throw new Error('no error');
  };

  test('defaults to keeping everything; days are whole numbers ≥ 1 or null', () => {
    expect(job(undefined).output.retain).toEqual({ runsDays: null, exportsDays: null });
    expect(job({ runsDays: 14 }).output.retain).toEqual({ runsDays: 14, exportsDays: null });
    expect(job({ runsDays: 14, exportsDays: null }).output.retain).toEqual({ runsDays: 14, exportsDays: null });
  });

  test('precise errors name the field', () => {
    expect(message({ runsDays: 0 })).toMatch(/job\.yaml: output\.retain\.runsDays must be ≥ 1, got 0/);
    expect(message({ exportsDays: 2.5 })).toMatch(/output\.retain\.exportsDays must be a whole number of days ≥ 1 \(or null to keep all\), got 2\.5/);
    expect(message({ exportsDays: '30d' })).toMatch(/output\.retain\.exportsDays must be a whole number of days ≥ 1 \(or null to keep all\), got "30d"/);
    expect(message({ runDays: 3 })).toMatch(/output\.retain.*runDays/);
    expect(message(14)).toMatch(/output\.retain must be a mapping, got number 14/);
  });
});

test('after a successful run, output.retain removes the old nights relative to the run date and keeps the new one', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-retain-run-'));
  const out = path.join(dir, 'out');
  const old = await fakeNight(out, '2024-05-01');
  const recent = await fakeNight(out, '2024-05-08');
  const conf = await writeTinyRun(dir, {}, tinyJob(0, { output: { dir: 'out', retain: { runsDays: 3, exportsDays: 3 } } }));
  const r = await runCli(['run', '--account', ACCOUNT, '--date', TINY_DATE, '--conf', conf]);
  expect(r.code, r.stderr).toBe(0);
  expect(await exists(old.runDir)).toBe(false);
  expect(await exists(old.exportDir)).toBe(false);
  expect(await exists(recent.runDir)).toBe(true);
  expect(await exists(recent.exportDir)).toBe(true);
  expect(await exists(path.join(out, 'runs', `account=${ACCOUNT}`, `date=${TINY_DATE}`, 'run.json'))).toBe(true);
  expect(await exists(dateCommitPath(out, ACCOUNT, TINY_DATE))).toBe(true);
  expect(r.stderr).toMatch(/retention\.removed/);
}, 300_000);
