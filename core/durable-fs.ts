/**
 * File operations in the order a crash-safe commit needs them: data reaches the disk (fsync) before a
 * rename makes it visible, and the directory entry itself is synced after the rename. Files and the
 * folders made for them get the modes in force (core/file-modes.ts: private by default).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { currentFileModes, makeDir, type FileModes } from './file-modes.js';

export async function fsyncFile(file: string): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes renames and unlinks inside `dir` durable (a no-op where directories cannot be opened, e.g. Windows). */
export async function fsyncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
  } catch {
    return;
  }
  try {
    await handle.sync();
  } catch (e) {
    if (!['EISDIR', 'EINVAL', 'EPERM'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
  } finally {
    await handle.close();
  }
}

/** Writes `data` to a temporary sibling and fsyncs it; the caller renames it into place when ready. */
export async function writeTempFile(file: string, data: string | Uint8Array, modes: FileModes = currentFileModes()): Promise<string> {
  const tmp = tempSibling(file);
  const handle = await open(tmp, 'wx', modes.file);
  try {
    await handle.chmod(modes.file); // exactly: the umask may have taken bits off a wider configured mode
    await handle.writeFile(data);
    await handle.sync();
  } catch (e) {
    // A disk that filled up mid-write: leave no half-written temporary file behind.
    await handle.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
  await handle.close();
  return tmp;
}

export async function commitRename(tmp: string, file: string): Promise<void> {
  await rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

/** Readers see the old file or the new one, never half of one, and the new one survives a crash once this resolves. */
export async function writeFileDurably(file: string, data: string | Uint8Array, modes: FileModes = currentFileModes()): Promise<void> {
  await makeDir(path.dirname(file), modes);
  await commitRename(await writeTempFile(file, data, modes), file);
}

export async function writeJsonDurably(file: string, value: unknown, modes: FileModes = currentFileModes()): Promise<void> {
  await writeFileDurably(file, `${JSON.stringify(value, null, 2)}\n`, modes);
}

/** `.tmp-<pid>-<random>-<name>` next to `file`: hidden, unique, and recognisable as garbage after a crash. */
export function tempSibling(file: string): string {
  return path.join(path.dirname(file), `${TEMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}-${path.basename(file)}`);
}

export const TEMP_PREFIX = '.tmp-';

export async function sha256File(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return { sha256: hash.digest('hex'), bytes: (await stat(file)).size };
}

/**
 * Removes the temporary files (and staging folders) that killed writers left under `dir`, at any depth;
 * returns how many. Only for folders no other writer is using (the run lock guarantees it for a date).
 */
export async function removeTempFiles(dir: string): Promise<number> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
  let removed = 0;
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.name.startsWith(TEMP_PREFIX)) {
      await rm(p, { recursive: true, force: true });
      removed++;
    } else if (e.isDirectory()) removed += await removeTempFiles(p);
  }
  if (removed > 0) await fsyncDir(dir);
  return removed;
}
