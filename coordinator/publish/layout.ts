/**
 * Where things live: <outDir>/predictions/account=<a>/date=<d>/product=<p>/ and <outDir>/audiences/….
 * Account, date, product and action names become path components; anything that could climb out of
 * the output folder or surprise a shell is refused before a single file is touched.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { SecurityError } from '../../core/errors.js';

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

export function partitionDir(outDir: string, account: string, date: string, product: string): string {
  return path.join(dateDir(outDir, account, date), `product=${safeComponent('product', product)}`);
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

export const PRODUCT_PREFIX = 'product=';

/** The product names that have a folder under a date (committed or not), sorted; folders no publish could have made are ignored. */
export async function productFolders(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return entries
    .filter((e) => e.isDirectory() && e.name.startsWith(PRODUCT_PREFIX))
    .map((e) => e.name.slice(PRODUCT_PREFIX.length))
    .filter((name) => COMPONENT.test(name))
    .sort();
}
