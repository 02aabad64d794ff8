/**
 * Retention (`nextbuy gc`, and `output.retain` after each run): removes an account's run folders
 * (`<out>/runs/account=<a>/date=<d>/`: shards, checkpoints, models, scores, the report) and CSV exports
 * (`<out>/exports/account=<a>/date=<d>/`) whose date is more than N days before a reference date.
 *
 * Never removed, whatever their age:
 *  - the published prediction tables, audiences, champion records and `models/.../latest.json`;
 *  - a date whose lock is held (a run, publish or backfill of it is in progress): gc takes the date's own
 *    lock before removing anything of it, so a run cannot start on a date while gc removes its folder;
 *  - the run folder and export of the latest committed date (the next night compares against its models);
 *  - a run folder holding models that `models/account=<a>/latest.json` (a scoring-only night's models) or
 *    the latest champion record names.
 * Removing a committed date's export records it in the date's commit record (date-commit.ts), so the
 * date stays committed and `run`/`backfill` do not redo it.
 */
import { lstat, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { LockedError } from '../../core/errors.js';
import { log } from '../../core/log.js';
import { dateCommitPath, markExportsRemoved } from '../publish/index.js';
import { lastPublishedBefore } from './previous-champion.js';
import { readJson } from './run-folder.js';
import { acquireRunLock, isLockHeld } from './run-lock.js';
import type { ModelsFile } from './state.js';

const DAY_MS = 86_400_000;
const DATE_FOLDER = /^date=(\d{4}-\d{2}-\d{2})$/;

export interface RetentionOptions {
  outDir: string;
  account: string;
  /** Run folders dated more than this many days before `today` are removed; null keeps them all. */
  runsDays: number | null;
  /** The same for exports; null keeps them all. */
  exportsDays: number | null;
  /** The reference date, 'YYYY-MM-DD' (UTC). @default today (UTC) */
  today?: string;
  /** Say what would be removed, remove nothing (and take no lock). @default false */
  dryRun?: boolean;
}

export type RetainedKind = 'run' | 'export';

export interface RetentionEntry {
  kind: RetainedKind;
  date: string;
  dir: string;
  bytes: number;
  /** Why it was kept (absent for a removed one). */
  kept?: string;
}

export interface RetentionResult {
  account: string;
  today: string;
  dryRun: boolean;
  /** Removed (or, on a dry run, what would be). */
  removed: RetentionEntry[];
  /** Old enough to go, but kept, with the reason. */
  kept: RetentionEntry[];
  /** Bytes of `removed`. */
  freedBytes: number;
}

export async function applyRetention(o: RetentionOptions): Promise<RetentionResult> {
  const today = o.today ?? new Date().toISOString().slice(0, 10);
  const todayMs = Date.parse(`${today}T00:00:00Z`);
  const result: RetentionResult = { account: o.account, today, dryRun: o.dryRun ?? false, removed: [], kept: [], freedBytes: 0 };
  const runsRoot = path.join(o.outDir, 'runs', `account=${o.account}`);
  const exportsRoot = path.join(o.outDir, 'exports', `account=${o.account}`);
  const expired = async (root: string, days: number | null) =>
    days === null ? [] : (await datedFolders(root)).filter((d) => (todayMs - Date.parse(`${d}T00:00:00Z`)) / DAY_MS > days);
  const runs = await expired(runsRoot, o.runsDays);
  const exports = await expired(exportsRoot, o.exportsDays);
  if (runs.length === 0 && exports.length === 0) return result;

  const latestCommitted = await latestCommittedDate(o.outDir, o.account);
  const modelRuns = await runsHoldingCurrentModels(o.outDir, o.account, runsRoot);
  const candidates: RetentionEntry[] = [
    ...runs.map((date) => ({ kind: 'run' as const, date, dir: path.join(runsRoot, `date=${date}`), bytes: 0 })),
    ...exports.map((date) => ({ kind: 'export' as const, date, dir: path.join(exportsRoot, `date=${date}`), bytes: 0 })),
  ];
  for (const entry of candidates) {
    entry.bytes = await sizeOf(entry.dir);
    const keep = (reason: string) => result.kept.push({ ...entry, kept: reason });
    if (entry.date === latestCommitted) {
      keep('the latest committed date');
      continue;
    }
    if (entry.kind === 'run' && modelRuns.has(entry.date)) {
      keep('holds models that latest.json or the latest champion record names');
      continue;
    }
    if (result.dryRun) {
      if (await isLockHeld(o.outDir, o.account, entry.date)) keep('locked: a run of this date is in progress');
      else result.removed.push(entry);
      continue;
    }
    let lock;
    try {
      lock = await acquireRunLock({ outDir: o.outDir, account: o.account, date: entry.date, command: 'gc' });
    } catch (e) {
      if (!(e instanceof LockedError)) throw e;
      keep('locked: a run of this date is in progress');
      continue;
    }
    try {
      if (entry.kind === 'export' && (await exists(dateCommitPath(o.outDir, o.account, entry.date)))) {
        await markExportsRemoved(o.outDir, o.account, entry.date);
      }
      await rm(entry.dir, { recursive: true, force: true });
    } finally {
      await lock.release();
    }
    result.removed.push(entry);
  }
  result.freedBytes = result.removed.reduce((s, e) => s + e.bytes, 0);
  if (!result.dryRun && result.removed.length > 0) {
    log.info('retention.removed', {
      account: o.account, today, runs: result.removed.filter((e) => e.kind === 'run').length,
      exports: result.removed.filter((e) => e.kind === 'export').length, freedBytes: result.freedBytes, kept: result.kept.length,
    });
  }
  return result;
}

/** The dates of `<root>/date=<d>/` folders (lock files and anything else are ignored), oldest first. */
async function datedFolders(root: string): Promise<string[]> {
  const entries = await readdir(root, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw e;
  });
  return entries
    .filter((e) => e.isDirectory())
    .map((e) => DATE_FOLDER.exec(e.name)?.[1])
    .filter((d): d is string => d !== undefined && !Number.isNaN(Date.parse(`${d}T00:00:00Z`)))
    .sort();
}

/** The newest date with a date commit record, or null. */
async function latestCommittedDate(outDir: string, account: string): Promise<string | null> {
  const dates = await datedFolders(path.join(outDir, 'predictions', `account=${account}`));
  for (const date of dates.reverse()) if (await exists(dateCommitPath(outDir, account, date))) return date;
  return null;
}

/** Dates whose run folder holds a model that latest.json or the latest champion record points at. */
async function runsHoldingCurrentModels(outDir: string, account: string, runsRoot: string): Promise<Set<string>> {
  const dirs: string[] = [];
  const latest = await readJson<ModelsFile>(path.join(outDir, 'models', `account=${account}`, 'latest.json'));
  for (const m of latest?.models ?? []) dirs.push(m.dir);
  const champion = await lastPublishedBefore(outDir, account, '9999-12-31');
  for (const p of Object.values(champion?.products ?? {})) for (const m of p.models) dirs.push(m.dir);
  const dates = new Set<string>();
  for (const dir of dirs) {
    const rel = path.relative(runsRoot, path.resolve(dir));
    const first = rel.split(path.sep)[0] ?? '';
    const date = rel.startsWith('..') ? undefined : DATE_FOLDER.exec(first)?.[1];
    if (date) dates.add(date);
  }
  return dates;
}

/** Bytes of the files under `p` (symbolic links counted as themselves, never followed). */
async function sizeOf(p: string): Promise<number> {
  const s = await lstat(p).catch(() => null);
  if (!s) return 0;
  if (!s.isDirectory()) return s.size;
  let total = 0;
  for (const name of await readdir(p)) total += await sizeOf(path.join(p, name));
  return total;
}

async function exists(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => null)) !== null;
}

/** '15.2 MB', for the gc summary. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = bytes / 1000;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** The gc report: one line per folder removed or kept, then the total. */
export function formatRetention(r: RetentionResult): string {
  const verb = r.dryRun ? 'would remove' : 'removed';
  const lines = [
    ...r.removed.map((e) => `${verb} ${e.kind} ${e.date}  ${formatBytes(e.bytes)}  ${e.dir}`),
    ...r.kept.map((e) => `kept ${e.kind} ${e.date}  ${formatBytes(e.bytes)}  (${e.kept})`),
  ];
  const runs = r.removed.filter((e) => e.kind === 'run').length;
  const exports = r.removed.length - runs;
  lines.push(`${r.dryRun ? 'dry run: would free' : 'freed'} ${formatBytes(r.freedBytes)}: ${runs} run folder(s), ${exports} export folder(s) of account ${r.account} (as of ${r.today})`);
  return `${lines.join('\n')}\n`;
}
