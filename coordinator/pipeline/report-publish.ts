/**
 * What publish adds to the night's report: the customers each action selected per product (the audiences
 * as exported), and the stage durations known by then; report.json and report.html are both rewritten, so
 * the page shows what report.json says.
 */
import path from 'node:path';
import { stageMs, writeReport, type EvaluationReport } from '../evaluate/index.js';
import { NO_ACTION, type AudienceFile } from '../publish/index.js';
import { readJson, type RunFolder } from './run-folder.js';

/**
 * Per product, each action's customers in the order exported, then 'none' (the product's customers no
 * action took). `rowsByProduct`: the product's published rows. Does nothing without a full report.json
 * (evaluate has not run for this night).
 */
export async function addAudiencesToReport(
  folder: RunFolder,
  audiences: AudienceFile[],
  rowsByProduct: Map<string, number>,
  timings?: Partial<Record<string, number>>,
): Promise<void> {
  const file = path.join(folder.reportDir, 'report.json');
  const report = await readJson<EvaluationReport>(file);
  if (!report || report.formatVersion !== 1 || !Array.isArray(report.products) || !report.header) return;
  for (const p of report.products) {
    const mine = audiences.filter((a) => a.product === p.product);
    if (mine.length === 0 && !rowsByProduct.has(p.product)) continue;
    const taken = mine.reduce((s, a) => s + a.rows, 0);
    const total = rowsByProduct.get(p.product) ?? taken;
    p.audiences = [...mine.map((a) => ({ action: a.action, customers: a.rows })), { action: NO_ACTION, customers: Math.max(0, total - taken) }];
  }
  const durations = stageMs(timings);
  if (durations) report.stats = { ...report.stats, stageMs: { ...((report.stats.stageMs as Record<string, number> | undefined) ?? {}), ...durations } };
  await writeReport(folder.reportDir, report);
}
