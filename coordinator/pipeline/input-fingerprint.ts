/**
 * What the input is, independent of where it lies: its files named relative to the input root (the
 * folder itself, a file's folder, or a glob's folder before its first wildcard), with their sizes and
 * modification times. Only stats are read (no file contents), so this stays cheap on large inputs.
 */
import { createHash } from 'node:crypto';
import { readdirSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';

export interface InputFile {
  /** Relative to the input root, '/'-separated. */
  name: string;
  size: number;
  mtimeMs: number;
}

export interface InputListing {
  /** input.path relative to the input root ('' for a folder, the file name, or the glob pattern). */
  pattern: string;
  files: InputFile[];
}

const GLOB = /[*?[]/;

/** `outDir`: left out when it lies inside the input folder, or each run's own outputs would change the input. */
export function listInput(inputPath: string, outDir?: string): InputListing {
  const glob = GLOB.test(inputPath);
  const s = glob ? null : statOrNull(inputPath);
  const root = glob
    ? inputPath.slice(0, inputPath.search(GLOB)).replace(/[^/]*$/, '') || '.'
    : s?.isDirectory() ? inputPath : path.dirname(inputPath);
  const files: InputFile[] = [];
  const walk = (p: string): void => {
    const st = statOrNull(p);
    if (!st) return;
    if (st.isDirectory()) {
      if (outDir !== undefined && path.resolve(p) === path.resolve(outDir)) return;
      for (const e of readdirSync(p).sort()) walk(path.join(p, e));
    } else files.push({ name: path.relative(root, p).split(path.sep).join('/'), size: st.size, mtimeMs: st.mtimeMs });
  };
  // A glob is fingerprinted by its whole root folder: a new matching file anywhere below it changes it.
  walk(glob || s?.isDirectory() ? root : inputPath);
  return { pattern: path.relative(root, inputPath).split(path.sep).join('/'), files };
}

/**
 * Names and sizes: the part of the input's identity that survives a copy, a new checkout or another
 * mount (modification times do not), and that changes when rows are added. Part of the run id.
 */
export function inputContentFingerprint(listing: InputListing): string {
  const hash = createHash('sha256').update(`${listing.pattern}\n`);
  for (const f of listing.files) hash.update(`${f.name}\u0000${f.size}\n`);
  return hash.digest('hex').slice(0, 16);
}

/** Names, sizes and modification times: changes when any input file is rewritten, even at the same size. */
export function inputChangeFingerprint(listing: InputListing): string {
  const hash = createHash('sha256').update(`${listing.pattern}\n`);
  for (const f of listing.files) hash.update(`${f.name}\u0000${f.size}\u0000${f.mtimeMs}\n`);
  return hash.digest('hex').slice(0, 16);
}

/** Unreadable or missing input is preprocess's to report (it names the file); here it just lists nothing. */
function statOrNull(p: string): Stats | null {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}
