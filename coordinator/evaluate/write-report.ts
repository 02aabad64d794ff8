import { mkdir, open, rename } from 'node:fs/promises';
import path from 'node:path';
import { renderHtml } from './render-html.js';
import type { EvaluationReport } from './report.js';

/** Writes `report.json` and `report.html` into `dir`; each appears whole or not at all (temp file + rename). */
export async function writeReport(dir: string, report: EvaluationReport): Promise<{ html: string; json: string }> {
  await mkdir(dir, { recursive: true });
  const json = path.join(dir, 'report.json');
  const html = path.join(dir, 'report.html');
  await writeAtomic(json, `${JSON.stringify(report, null, 2)}\n`);
  await writeAtomic(html, renderHtml(report));
  return { html, json };
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const handle = await open(tmp, 'w');
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
}
