import { writeFileDurably } from '../../core/durable-fs.js';
import { makeDir } from '../../core/file-modes.js';
import path from 'node:path';
import { renderHtml } from './render-html.js';
import type { EvaluationReport } from './report.js';

/** Writes `report.json` and `report.html` into `dir`; each appears whole or not at all (temp file + rename). */
export async function writeReport(dir: string, report: EvaluationReport): Promise<{ html: string; json: string }> {
  await makeDir(dir);
  const json = path.join(dir, 'report.json');
  const html = path.join(dir, 'report.html');
  await writeFileDurably(json, `${JSON.stringify(report, null, 2)}\n`);
  await writeFileDurably(html, renderHtml(report));
  return { html, json };
}

