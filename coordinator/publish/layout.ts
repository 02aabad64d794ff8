/**
 * Where things live: <outDir>/predictions/account=<a>/date=<d>/product=<p>/ and <outDir>/audiences/….
 * Account and date names are checked at load and refused here too if anything could climb out of the
 * output folder or surprise a shell. Product names come from the data: they are never refused, but
 * encoded by core/path-component.ts (`product=<encoded>`; the name itself is in the rows and manifest).
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { SecurityError } from '../../core/errors.js';
import { isPathComponent, pathComponent } from '../../core/path-component.js';

/** Letters, digits, '-', '_' and '.', not starting with '.', at most 128 characters. */
const COMPONENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

export function safeComponent(what: string, value: string): string {
  if (typeof value !== 'string' || !COMPONENT.test(value)) {
    throw new SecurityError(
      `${what} "${String(value)}" cannot be used in a path: use letters, digits, '-', '_' and '.' (not first), at most 128 characters`,
    );
  }
  return value;
}

export function safeDate(value: string): string {
  const m = typeof value === 'string' ? DATE.exec(value) : null;
  const valid =
    m !== null &&
    (() => {
      const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
      return d.toISOString().slice(0, 10) === value;
    })();
  if (!valid) throw new SecurityError(`date "${String(value)}" cannot be used in a path: write a calendar date as YYYY-MM-DD`);
  return value;
}

export function dateDir(outDir: string, account: string, date: string): string {
  return path.join(outDir, 'predictions', `account=${safeComponent('account', account)}`, `date=${safeDate(date)}`);
}

export const PRODUCT_PREFIX = 'product=';

/** `product=<encoded name>`: the folder of a product, whatever its name. */
export function productFolder(product: string): string {
  return `${PRODUCT_PREFIX}${pathComponent(product)}`;
}

export function partitionDir(outDir: string, account: string, date: string, product: string): string {
  return path.join(dateDir(outDir, account, date), productFolder(product));
}

/**
 * Where a publish stages the date's partitions before they take their place, and where replaced ones wait
 * to be deleted: outside predictions/, so no glob of the table (DuckDB's included, which reads files and
 * folders starting with '_' or '.') ever sees them, and on the same file system, so a rename moves them.
 */
export function stagingDir(outDir: string, account: string, date: string): string {
  return path.join(outDir, '.staging', 'predictions', `account=${safeComponent('account', account)}`, `date=${safeDate(date)}`);
}

export function audienceDir(outDir: string, account: string, date: string): string {
  return path.join(outDir, 'audiences', `account=${safeComponent('account', account)}`, `date=${safeDate(date)}`);
}

/**
 * The product folders under a date (committed or not), as folder names (`product=…`), sorted; folders no
 * publish could have made are ignored. The product a folder holds is the name in its manifest.
 */
export async function productFolders(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return entries
    .filter((e) => e.isDirectory() && e.name.startsWith(PRODUCT_PREFIX) && isPathComponent(e.name.slice(PRODUCT_PREFIX.length)))
    .map((e) => e.name)
    .sort();
}
