/**
 * One run per account and date: `<out>/runs/account=<a>/date=<d>.lock`, created exclusively (O_EXCL),
 * holding who runs (host, pid, start time) and a heartbeat the holder refreshes. A second run, publish or
 * backfill of the date is refused with a LockedError (exit 10) before it touches anything. A lock whose
 * heartbeat is older than `staleAfter`, or whose holder is a process of this host that no longer exists
 * (a kill -9), is taken over, with a log line saying whose it was.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { currentFileModes, makeDir } from '../../core/file-modes.js';
import os from 'node:os';
import path from 'node:path';
import { LockedError } from '../../core/errors.js';
import { fsyncDir, writeTempFile } from '../../core/durable-fs.js';
import { log } from '../../core/log.js';

export interface RunLockOptions {
  outDir: string;
  account: string;
  date: string;
  /** What takes the lock, in the message a refused run prints (e.g. 'run', 'publish'). */
  command: string;
  /** How often the holder refreshes its heartbeat. @default 10_000 ms */
  heartbeatMs?: number;
  /** A heartbeat older than this means the holder is gone. @default 120_000 ms */
  staleAfterMs?: number;
}

export interface LockRecord {
  host: string;
  pid: number;
  command: string;
  startedAt: string;
  heartbeatAt: string;
  /** Distinguishes this holder from a later one with the same host and pid. */
  token: string;
}

export interface RunLock {
  file: string;
  /** Stops the heartbeat and removes the lock (only if it is still this holder's). */
  release(): Promise<void>;
}

export function lockPath(outDir: string, account: string, date: string): string {
  return path.join(outDir, 'runs', `account=${account}`, `date=${date}.lock`);
}

export async function acquireRunLock(o: RunLockOptions): Promise<RunLock> {
  const file = lockPath(o.outDir, o.account, o.date);
  const heartbeatMs = o.heartbeatMs ?? 10_000;
  const staleAfterMs = o.staleAfterMs ?? 120_000;
  await makeDir(path.dirname(file));
  const now = new Date().toISOString();
  const mine: LockRecord = { host: os.hostname(), pid: process.pid, command: o.command, startedAt: now, heartbeatAt: now, token: randomBytes(8).toString('hex') };

  if (!(await createExclusive(file, mine))) {
    const held = await readLock(file);
    const staleness = held ? whyStale(held, staleAfterMs) : await unreadableStale(file, staleAfterMs);
    if (staleness === null) {
      const who = held
        ? `'${held.command}' on host ${held.host} (pid ${held.pid}, started ${held.startedAt}, last heartbeat ${held.heartbeatAt})`
        : 'another process that is just starting';
      throw new LockedError(
        `account ${o.account} date ${o.date} is being run by ${who}; nothing was touched. ` +
          `Wait for it to finish, or remove ${file} if that process is gone.`,
      );
    }
    // Take over: move the stale lock aside (one of two racing takers wins the rename), then create ours.
    const aside = `${file}.stale-${mine.token}`;
    try {
      await rename(file, aside);
      await unlink(aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (!(await createExclusive(file, mine))) {
      const winner = await readLock(file);
      throw new LockedError(`account ${o.account} date ${o.date} was just taken by host ${winner?.host ?? '?'} pid ${winner?.pid ?? '?'}; nothing was touched`);
    }
    log.warn('run.lock_taken_over', {
      account: o.account, date: o.date, reason: staleness,
      previousHost: held?.host ?? null, previousPid: held?.pid ?? null, previousHeartbeat: held?.heartbeatAt ?? null,
    });
  }

  let stopped = false;
  const timer = setInterval(() => {
    void (async () => {
      const current = await readLock(file).catch(() => null);
      if (stopped || current?.token !== mine.token) return;
      const tmp = await writeTempFile(file, json({ ...mine, heartbeatAt: new Date().toISOString() }));
      await rename(tmp, file);
    })().catch((e: Error) => log.warn('run.lock_heartbeat_failed', { file, error: e.message }));
  }, heartbeatMs);
  timer.unref();

  return {
    file,
    async release() {
      stopped = true;
      clearInterval(timer);
      const current = await readLock(file).catch(() => null);
      if (current?.token === mine.token) await unlink(file).catch(() => {});
    },
  };
}

/** Whether a live holder has the date's lock (a stale one, which the next taker would take over, does not count). */
export async function isLockHeld(outDir: string, account: string, date: string, staleAfterMs = 120_000): Promise<boolean> {
  const file = lockPath(outDir, account, date);
  const held = await readLock(file);
  if (held) return whyStale(held, staleAfterMs) === null;
  return (await stat(file).catch(() => null)) !== null && (await unreadableStale(file, staleAfterMs)) === null;
}

async function createExclusive(file: string, record: LockRecord): Promise<boolean> {
  let handle;
  try {
    handle = await open(file, 'wx', currentFileModes().file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    await handle.writeFile(json(record));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fsyncDir(path.dirname(file));
  return true;
}

async function readLock(file: string): Promise<LockRecord | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as LockRecord;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    // Half-written by a holder killed between create and write: unreadable counts as stale below.
    if (e instanceof SyntaxError) return null;
    throw e;
  }
}

/** A lock file without a whole record: its holder is between create and write, unless the file is old. */
async function unreadableStale(file: string, staleAfterMs: number): Promise<string | null> {
  const s = await stat(file).catch(() => null);
  if (!s) return 'released meanwhile';
  const age = Date.now() - s.mtimeMs;
  return age > staleAfterMs ? `unreadable and ${Math.round(age / 1000)} s old` : null;
}

/** Why the lock no longer protects anyone, or null while its holder is alive. */
function whyStale(held: LockRecord, staleAfterMs: number): string | null {
  const age = Date.now() - Date.parse(held.heartbeatAt);
  if (!(age <= staleAfterMs)) return `heartbeat ${Math.round(age / 1000)} s old`;
  if (held.host === os.hostname() && !processExists(held.pid)) return `process ${held.pid} on this host is gone`;
  return null;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
