/**
 * Permissions of what nextbuy writes. Run folders and outputs hold customer data, so files are 0600 and
 * folders 0700 unless the job says otherwise (`output.mode`), whatever the process umask: every folder
 * nextbuy creates and every file it writes is set to its mode explicitly (a file DuckDB wrote itself
 * included), so a umask of 022 no longer leaves them world-readable.
 *
 * The modes in force are scoped to the async work of one run (`withFileModes`), so that runs of different
 * jobs in one process keep their own; outside any scope they are PRIVATE_MODES.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';

export interface FileModes {
  /** Permission bits of files, e.g. 0o600. */
  file: number;
  /** Permission bits of folders, e.g. 0o700. */
  dir: number;
}

export const PRIVATE_MODES: FileModes = Object.freeze({ file: 0o600, dir: 0o700 });

/** A file mode and its folder twin: x wherever r is set (0600 → 0700, 0640 → 0750). */
export function modesOf(file: number): FileModes {
  return { file, dir: file | ((file & 0o444) >> 2) };
}

/** '0640' (as written in octal), for messages. */
export function formatMode(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}

const scope = new AsyncLocalStorage<FileModes>();

/** Runs `fn` with `modes` as the modes of everything it writes (unless a call names others). */
export function withFileModes<T>(modes: FileModes, fn: () => Promise<T>): Promise<T> {
  return scope.run(modes, fn);
}

export function currentFileModes(): FileModes {
  return scope.getStore() ?? PRIVATE_MODES;
}

/**
 * `mkdir -p`: every folder it creates (not those that existed) gets `modes.dir` exactly. A folder is
 * created with those bits (the umask can only remove some) and then set to them, so it is never wider.
 */
export async function makeDir(dir: string, modes: FileModes = currentFileModes()): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: modes.dir });
  if (first === undefined) return;
  const target = path.resolve(dir);
  for (let d = path.resolve(first); ; d = path.join(d, path.relative(d, target).split(path.sep)[0]!)) {
    await chmod(d, modes.dir);
    if (d === target) break;
  }
}

/** Sets a file written by someone else (DuckDB's COPY) to `modes.file`, before it is renamed into place. */
export async function setFileMode(file: string, modes: FileModes = currentFileModes()): Promise<void> {
  await chmod(file, modes.file);
}
