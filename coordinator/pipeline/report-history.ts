/**
 * The same products' published AUC on the account's earlier committed nights, for the report: the dates
 * with a date commit record (`<out>/predictions/account=<a>/date=<d>/_committed.json`) before this one,
 * newest `nights` of them, each read from its run folder's report.json when that folder still holds the
 * committed run's report (retention may have removed it, and a later unpublished rerun may have replaced
 * it: both are skipped).
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { evaluatedOnOf, PUBLISHED, type EarlierNight, type EvaluationReport } from '../evaluate/index.js';
import { dateCommitPath, type DateCommitRecord } from '../publish/index.js';
import { readJson } from './run-folder.js';

/** How many earlier nights the report shows. */
export const EARLIER_NIGHTS = 14;

const DATE_FOLDER = /^date=(\d{4}-\d{2}-\d{2})$/;

/** Product → its earlier nights, oldest first. */
export async function earlierNights(outDir: string, account: string, date: string, nights = EARLIER_NIGHTS): Promise<Map<string, EarlierNight[]>> {
  const root = path.join(outDir, 'predictions', `account=${account}`);
  const entries = await readdir(root, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw e;
  });
  const dates = entries
    .filter((e) => e.isDirectory())
    .map((e) => DATE_FOLDER.exec(e.name)?.[1])
    .filter((d): d is string => d !== undefined && d < date)
    .sort();
  const out = new Map<string, EarlierNight[]>();
  const found: { date: string; report: EvaluationReport }[] = [];
  for (const d of dates.reverse()) {
    if (found.length >= nights) break;
    const record = await readJson<DateCommitRecord>(dateCommitPath(outDir, account, d));
    if (!record) continue;
    const report = await readJson<EvaluationReport>(path.join(outDir, 'runs', `account=${account}`, `date=${d}`, 'report', 'report.json'));
    if (!report || report.header?.runId !== record.runId || !Array.isArray(report.products)) continue;
    found.push({ date: d, report });
  }
  for (const { date: d, report } of found.reverse()) {
    const evaluatedOn = evaluatedOnOf(report);
    for (const p of report.products) {
      const published = p.entries?.find((e) => e.name === p.published) ?? null;
      const list = out.get(p.product) ?? [];
      list.push({
        date: d,
        runId: report.header.runId,
        // The champion's name says more than the entry's name 'published'.
        published: (p.published === PUBLISHED ? (p as { champion?: { candidate?: string } }).champion?.candidate : undefined) ?? p.published ?? null,
        auc: published?.metrics.auc ?? null,
        lower: published?.aucCi?.lower ?? null,
        upper: published?.aucCi?.upper ?? null,
        n: p.n,
        positives: p.positives,
        evaluatedOn,
        flagged: (p.flags ?? []).length > 0,
      });
      out.set(p.product, list);
    }
  }
  return out;
}
