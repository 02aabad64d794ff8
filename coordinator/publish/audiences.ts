/**
 * Audiences for marketing tools: per product and action, the customers that action selected
 * (customer_id, product, score, rank, action; by rank), as CSV and Parquet:
 *
 *   <outDir>/audiences/account=<a>/date=<d>/product=<p>/<action>.csv|.parquet   and _audiences.json
 *
 * (folder and file names through core/path-component.ts, like the prediction table's).
 *
 * Built from the committed partitions only, in a fresh folder that then takes the date's place, so a
 * rerun never leaves the audience of an action that no longer exists next to the new ones.
 */
import { randomBytes } from 'node:crypto';
import { readdir, rename, rm } from 'node:fs/promises';
import { makeDir, setFileMode } from '../../core/file-modes.js';
import path from 'node:path';
import { fsyncDir, writeFileDurably } from '../../core/durable-fs.js';
import { csvCopyOptions, csvSelectList, type CsvColumn } from './csv-guard.js';
import { withDuckDB } from './duckdb.js';
import { audienceDir, productFolder } from './layout.js';
import { pathComponent } from '../../core/path-component.js';
import { requireCommitted } from './load.js';
import { COMMITTED_FILES, filesList } from './read.js';
import { parquetOptions } from './schema.js';

export type AudienceFormat = 'csv' | 'parquet';

export interface ExportAudiencesOptions {
  outDir: string;
  account: string;
  date: string;
  /** @default ['csv', 'parquet'] */
  formats?: AudienceFormat[];
  /** Neutralise CSV cells a spreadsheet would run as formulas (./csv-guard.ts); Parquet is written as is. @default true */
  csvFormulaGuard?: boolean;
}

/** An audience's columns; the customer, product and action are text. */
const AUDIENCE_COLUMNS: CsvColumn[] = [
  { name: 'customer_id', sql: 'customer_id', text: true },
  { name: 'product', sql: 'product', text: true },
  { name: 'score', sql: 'score', text: false },
  { name: 'rank', sql: 'rank', text: false },
  { name: 'action', sql: 'action', text: true },
];

export interface AudienceFile {
  product: string;
  action: string;
  rows: number;
  /** Absolute paths by format. */
  files: Partial<Record<AudienceFormat, string>>;
}

export interface AudienceExport {
  dir: string;
  audiences: AudienceFile[];
}

export const AUDIENCE_MANIFEST = '_audiences.json';

export async function exportAudiences(o: ExportAudiencesOptions): Promise<AudienceExport> {
  const formats = o.formats ?? ['csv', 'parquet'];
  const guard = o.csvFormulaGuard ?? true;
  const partitions = await requireCommitted(o.outDir, o.account, o.date);
  const finalDir = audienceDir(o.outDir, o.account, o.date);
  const parent = path.dirname(finalDir);
  const base = path.basename(finalDir);
  const stagingDir = path.join(parent, `.tmp-${base}-${randomBytes(6).toString('hex')}`);
  await makeDir(stagingDir);

  const audiences: AudienceFile[] = [];
  await withDuckDB({}, async (connection) => {
    for (const p of partitions) {
      const productDir = path.join(stagingDir, productFolder(p.product));
      await makeDir(productDir);
      for (const { name: action } of p.manifest.actions) {
        const select = (guarded: boolean) =>
          `SELECT ${csvSelectList(AUDIENCE_COLUMNS, guarded)} FROM ${COMMITTED_FILES} WHERE action = $action ORDER BY rank`;
        const params = { files: filesList(p.files), action };
        const files: Partial<Record<AudienceFormat, string>> = {};
        for (const format of formats) {
          const file = `${pathComponent(action)}.${format}`;
          const staged = path.join(productDir, file);
          const copy =
            format === 'csv'
              ? `COPY (${select(guard)}) TO $target (${csvCopyOptions(AUDIENCE_COLUMNS, guard)})`
              : `COPY (${select(false)}) TO $target (${parquetOptions()})`;
          await connection.run(copy, { ...params, target: staged });
          await setFileMode(staged);
          files[format] = path.join(finalDir, productFolder(p.product), file);
        }
        const counted = await connection.runAndReadAll(`SELECT count(*) FROM (${select(false)})`, params);
        audiences.push({ product: p.product, action, rows: Number(counted.getRows()[0]![0]), files });
      }
    }
  });
  await writeFileDurably(
    path.join(stagingDir, AUDIENCE_MANIFEST),
    `${JSON.stringify(
      {
        account: o.account,
        date: o.date,
        sources: partitions.map((p) => ({ product: p.product, runId: p.manifest.runId, files: p.manifest.files })),
        audiences: audiences.map((a) => ({
          product: a.product,
          action: a.action,
          rows: a.rows,
          files: Object.fromEntries(Object.entries(a.files).map(([f, file]) => [f, path.relative(finalDir, file)])),
        })),
      },
      null,
      2,
    )}\n`,
  );

  // Swap: the old folder steps aside, the new one takes its name, then the old one goes.
  const asideDir = path.join(parent, `.old-${base}-${randomBytes(6).toString('hex')}`);
  let hadOld = true;
  try {
    await rename(finalDir, asideDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    hadOld = false;
  }
  await rename(stagingDir, finalDir);
  await fsyncDir(parent);
  if (hadOld) await rm(asideDir, { recursive: true, force: true });
  // Leftovers of an export that crashed mid-way for this date.
  for (const entry of await readdir(parent)) {
    if (entry.startsWith(`.tmp-${base}-`) || entry.startsWith(`.old-${base}-`)) await rm(path.join(parent, entry), { recursive: true, force: true });
  }
  return { dir: finalDir, audiences };
}

/**
 * Products whose actions all selected nobody: nothing reaches marketing for them (thresholds above every
 * calibrated score, or shares too small for the customer count). The caller warns about each.
 */
export function productsWithEmptyAudiences(audiences: AudienceFile[]): string[] {
  const rowsByProduct = new Map<string, number>();
  for (const a of audiences) rowsByProduct.set(a.product, (rowsByProduct.get(a.product) ?? 0) + a.rows);
  return [...rowsByProduct].filter(([, rows]) => rows === 0).map(([product]) => product);
}
