/**
 * A real-shaped transaction log, mapped with only a job file (test/fixtures/retail): event types derived
 * from the quantity's sign, categories from the stock code, a line of binary garbage, a line that is not
 * UTF-8 and a truncated last line. The real CLI runs it end to end with a tiny model.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import type { PreprocessResult } from '../coordinator/preprocess/index.js';
import { retailJob, runCli, type CliResult } from './helpers/cli.js';
import { duck, readFeatureRows } from './helpers/preprocess.js';
import { loadJob } from '../jobs/job-file.js';

const DATE = '2011-02-20';
let dir: string;
let conf: string;
let run: CliResult;
const runDir = (date: string) => path.join(dir, `out/runs/account=retail/date=${date}`);
const exists = (p: string) => stat(p).then(() => true, () => false);

describe('nextbuy run on a transaction log', () => {
  beforeAll(async () => {
    ({ dir, conf } = await retailJob());
    run = await runCli(['run', '--account', 'retail', '--date', DATE, '--conf', conf]);
  }, 120_000);

  test('exits 0 and counts the malformed lines among the rejected rows', () => {
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/804 rows read .* 34 rejected \(missing_customer 31, malformed_line 3\)/);
  });

  test('malformed lines are quarantine rows with their file, line number and DuckDB\'s reason', async () => {
    const q = path.join(runDir(DATE), 'quarantine.parquet');
    const bad = await duck<{ source_file: string; source_row: bigint; detail: string; line_text: string; InvoiceNo: string | null }>(
      `SELECT source_file, source_row, detail, line_text, InvoiceNo FROM '${q}' WHERE reason = 'malformed_line' ORDER BY source_row`,
    );
    expect(bad.map((r) => Number(r.source_row))).toEqual([403, 404, 805]);
    expect(bad.every((r) => r.source_file === path.join(dir, 'transactions.csv') && r.InvoiceNo === null)).toBe(true);
    expect(bad[1]!.line_text).toContain('garbage');
    expect(bad[2]!.detail).toBe('MISSING COLUMNS: Expected Number of Columns: 8 Found: 5');
    expect(bad[2]!.line_text).toBe('581587,22613,"MUG, 22613",12,2011-02-27 12:50:00');
  });

  test('rejected rows keep every input column, and their line number points at their line', async () => {
    const q = path.join(runDir(DATE), 'quarantine.parquet');
    const rows = await duck<Record<string, string | bigint | null>>(`SELECT * FROM '${q}' WHERE reason = 'missing_customer' ORDER BY source_row`);
    expect(rows).toHaveLength(31);
    const lines = (await readFile(path.join(dir, 'transactions.csv'), 'latin1')).split('\n');
    for (const r of rows) {
      expect(Object.keys(r).slice(0, 8)).toEqual(['InvoiceNo', 'StockCode', 'Description', 'Quantity', 'InvoiceDate', 'UnitPrice', 'CustomerID', 'Country']);
      const line = lines[Number(r.source_row) - 1]!;
      expect(line.startsWith(`${r.InvoiceNo},${r.StockCode},"${r.Description}",${r.Quantity},${r.InvoiceDate},${r.UnitPrice},,`)).toBe(true);
    }
  });

  test('event types and categories are derived by the job file\'s expressions', async () => {
    const pre = JSON.parse(await readFile(path.join(runDir(DATE), 'preprocess.json'), 'utf8')) as PreprocessResult;
    expect(pre.vocabulary.event).toEqual(['purchase', 'return']);
    expect([...pre.vocabulary.category!].sort()).toEqual(['21', '22', '47', '84', '85']);
    // Returns in the score set's feature window, counted from the CSV itself.
    const [want] = await duck<{ n: number }>(
      `SELECT count(*)::INTEGER AS n FROM read_csv('${path.join(dir, 'transactions.csv')}', all_varchar = true, ignore_errors = true)
       WHERE TRY_CAST(Quantity AS INTEGER) < 0 AND CustomerID <> '' AND InvoiceDate >= '2011-01-30' AND InvoiceDate < '${DATE}'`,
    );
    const features = await readFeatureRows(pre.score!, await loadJob(conf));
    const got = features.filter((f) => f.product === 'any').reduce((n, f) => n + Number(f.all_n_return_21d), 0);
    expect(want!.n).toBeGreaterThan(0);
    expect(got).toBe(want!.n);
  });

  test('every customer appears exactly once per product in the prediction table', async () => {
    const glob = path.join(dir, `out/predictions/account=retail/date=${DATE}/product=*/*.parquet`);
    const rows = await duck<{ product: string; n: number; customers: number }>(
      `SELECT product, count(*)::INTEGER AS n, count(DISTINCT customer_id)::INTEGER AS customers FROM read_parquet('${glob}', hive_partitioning = false) GROUP BY 1 ORDER BY 1`,
    );
    expect(rows).toEqual([{ product: '22', n: 60, customers: 60 }, { product: 'any', n: 60, customers: 60 }]);
  });

  test('a date long after the data ends exits 4, names the last event and the date, and publishes nothing', async () => {
    const stale = await runCli(['run', '--account', 'retail', '--date', '2012-08-01', '--conf', conf]);
    expect(stale.code).toBe(4);
    expect(stale.stderr).toContain("the input's latest valid event before 2012-08-01 is at 2011-02-27T16:48:00.000Z");
    expect(stale.stderr).toContain('--allow-stale');
    expect(await exists(path.join(dir, 'out/predictions/account=retail/date=2012-08-01'))).toBe(false);
    expect(await exists(runDir('2012-08-01'))).toBe(false);
  }, 60_000);

  test('an input error leaves no run folder, only the quarantine its message names', async () => {
    const strict = await retailJob({ validation: { maxRejectedShare: 0.01, minLastDayShare: 0 } });
    const r = await runCli(['preprocess', '--account', 'retail', '--date', DATE, '--conf', strict.conf]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('top reasons: missing_customer 31, malformed_line 3');
    const folder = path.join(strict.dir, `out/runs/account=retail/date=${DATE}`);
    expect(r.stderr).toContain(path.join(folder, 'quarantine.parquet'));
    expect(await readdir(folder)).toEqual(['quarantine.parquet']);
  }, 60_000);

  test('--allow-stale builds and publishes anyway, and the summary, preprocess.json and report.json record it', async () => {
    const r = await runCli(['run', '--account', 'retail', '--date', '2011-03-10', '--conf', conf, '--allow-stale']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('stale input built anyway (--allow-stale)');
    const pre = JSON.parse(await readFile(path.join(runDir('2011-03-10'), 'preprocess.json'), 'utf8')) as PreprocessResult;
    expect(pre.stats.freshness).toMatchObject({ allowedStale: true, lastEventAt: '2011-02-27T16:48:00.000Z' });
    const report = JSON.parse(await readFile(path.join(runDir('2011-03-10'), 'report/report.json'), 'utf8')) as { stats: { staleInputAllowed?: string } };
    expect(report.stats.staleInputAllowed).toContain("the input's latest valid event before 2011-03-10 is at 2011-02-27T16:48:00.000Z");
  }, 90_000);
});
