/**
 * The demo, end to end: the real CLI on the bundled Taobao sample with two local worker processes,
 * a smaller model so that it runs in seconds. Checks the outputs' content, not just their existence.
 */
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { beforeAll, describe, expect, test } from 'vitest';
import type { CustomerExplanation } from '../coordinator/explain/index.js';
import { decodeResults, readResultColumns } from '../proto/result-batch.js';
import { runCli, taobaoJob, type CliResult } from './helpers/cli.js';

const DATE = '2017-12-02';
let dir: string;
let conf: string;
let run: CliResult;

/** customer → `${modelVersion}/${product}` → score, from a run's scores folder. */
async function scoresOf(scoresDir: string): Promise<Map<string, Map<string, number>>> {
  const out = new Map<string, Map<string, number>>();
  for (const f of (await readdir(scoresDir)).sort()) {
    for (const b of decodeResults(await readFile(path.join(scoresDir, f)))) {
      const c = readResultColumns(b);
      c.customerIds.forEach((id, i) => {
        const m = out.get(id) ?? new Map<string, number>();
        m.set(`${c.modelVersions[i]}/${c.products[i]}`, c.scores[i]!);
        out.set(id, m);
      });
    }
  }
  return out;
}

async function query(sql: string): Promise<unknown[][]> {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    return (await c.runAndReadAll(sql)).getRows() as unknown[][];
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

describe('nextbuy run on the Taobao sample', () => {
  beforeAll(async () => {
    ({ dir, conf } = await taobaoJob({
      products: { overall: true, topCategories: 1 },
      model: { epochs: 2, embeddingDim: 8, hiddenUnits: 8, denseUnits: 8, batchSize: 128 },
      shards: { count: 4 },
    }));
    run = await runCli(['run', '--account', 'taobao', '--date', DATE, '--conf', conf]);
  }, 240_000);

  test('exits 0 and prints the summary a user checks first', () => {
    expect(run.stderr).not.toMatch(/internal error/);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/84,287 rows read from 1 file\(s\) · 84,252 accepted · 35 rejected \(time_out_of_range 35\)/);
    expect(run.stdout).toMatch(/score\s+as of 2017-12-02: 814 customers .* positives .*any 237/);
    expect(run.stdout).toMatch(/evaluation {2}on the held-out label window 2017-12-02 \.\. 2017-12-03/);
    expect(run.stdout).toMatch(/ {2}any +814 +237 .* published 0\.\d{3} \(0\.\d{3}\.\.0\.\d{3}\) · recency-frequency 0\.\d{3} \(.*\) · logistic-counts 0\.\d{3} \(.*\)\n {15}verdict: published (beats|loses to|is level with) the best baseline /);
    expect(run.stdout).toMatch(/^ {2}any +814 +237 +0\.\d{3} +\d+\.\d{2} +\d+\.\d{2}/m);
    expect(run.stdout).toMatch(/published {3}2 partitions, 1,628 predictions/);
    expect(run.stdout).toMatch(/time {8}total .* validate .* train .* score .* publish/);
  });

  test('the quarantine file holds the 35 stray timestamps with their reason', async () => {
    const q = path.join(dir, 'out/runs/account=taobao/date=2017-12-02/quarantine.parquet');
    expect(await query(`select reason, count(*)::int from '${q}' group by 1`)).toEqual([['time_out_of_range', 35]]);
  });

  test('every customer appears exactly once per product, with a probability, rank, decile and action', async () => {
    const glob = path.join(dir, 'out/predictions/account=taobao/date=2017-12-02/product=*/*.parquet');
    const rows = await query(
      `select product, count(*)::int, count(distinct customer_id)::int, min(score) >= 0 and max(score) <= 1, min(rank)::int, max(rank)::int,
              min(decile)::int, max(decile)::int, count(distinct run_id)::int, bool_and(action in ('in_store', 'sms', 'none'))
       from read_parquet('${glob}', hive_partitioning = false) group by product order by product`,
    );
    expect(rows).toHaveLength(2);
    for (const r of rows) expect(r.slice(1)).toEqual([814, 814, true, 1, 814, 1, 10, 1, true]);
  });

  test('each partition has a manifest whose row count and checksum match its data', async () => {
    const base = path.join(dir, 'out/predictions/account=taobao/date=2017-12-02');
    const entries = await readdir(base);
    // Beside the product partitions, the date's commit record, written last.
    expect(entries.filter((e) => !e.startsWith('product='))).toEqual(['_committed.json']);
    for (const p of entries.filter((e) => e.startsWith('product='))) {
      const manifest = JSON.parse(await readFile(path.join(base, p, '_manifest.json'), 'utf8'));
      expect(manifest.rowCount).toBe(814);
      expect(manifest.date).toBe(DATE);
      expect(manifest.modelVersions.length).toBeGreaterThanOrEqual(1);
      const { createHash } = await import('node:crypto');
      for (const f of manifest.files) {
        expect(createHash('sha256').update(await readFile(path.join(base, p, f.name))).digest('hex')).toBe(f.sha256);
      }
    }
  });

  test('the report carries real metrics for every product, model, ensemble and baseline', async () => {
    const report = JSON.parse(await readFile(path.join(dir, 'out/runs/account=taobao/date=2017-12-02/report/report.json'), 'utf8'));
    const any = report.products.find((p: { product: string }) => p.product === 'any');
    expect(any.n).toBe(814);
    expect(any.positives).toBe(237);
    const names = any.entries.map((e: { name: string }) => e.name);
    expect(names).toEqual(expect.arrayContaining(['logistic.any', 'lstm.any', 'attention', 'ensemble', 'published', 'recency-frequency', 'logistic-counts']));
    for (const e of any.entries) expect(e.metrics.auc).toBeGreaterThan(0.3);
    // Every AUC with its DeLong interval; a verdict against the best per-product baseline; flags where positives are few.
    for (const e of any.entries) expect(e.aucCi.lower).toBeLessThan(e.aucCi.upper);
    // The verdict judges the scores as published: the champion, calibrated (its note says which).
    expect(any.comparison).toMatchObject({ published: 'published', baseline: any.bestBaseline });
    expect(any.entries.find((e: { name: string }) => e.name === 'published').note).toMatch(/calibrated/);
    expect(['beats', 'loses', 'level']).toContain(any.verdict.outcome);
    expect(any.flags).toEqual([]);
    for (const p of report.products.filter((x: { positives: number }) => x.positives < 10)) {
      expect(p.flags.map((f: { code: string }) => f.code)).toContain('few-evaluation-positives');
    }
    const html = await readFile(path.join(dir, 'out/runs/account=taobao/date=2017-12-02/report/report.html'), 'utf8');
    expect(html.match(/<svg/g)?.length ?? 0).toBeGreaterThanOrEqual(6);
  });

  test('explain: a customer’s scores are the night’s scores, explained by events before the as-of date', async () => {
    const scored = await scoresOf(path.join(dir, 'out/runs/account=taobao/date=2017-12-02/scores'));
    const customer = [...scored.keys()][7]!;
    const r = await runCli(['explain', '--account', 'taobao', '--date', DATE, '--conf', conf, '--customer', customer, '--top', '3', '--json']);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.code).toBe(0);
    const e = JSON.parse(r.stdout) as CustomerExplanation;
    expect(e.customerId).toBe(customer);
    const names = e.models.map((m) => m.model);
    expect(names).toHaveLength(5);
    expect(names).toEqual(expect.arrayContaining(['attention', 'logistic.any', 'lstm.any', expect.stringMatching(/^logistic\.\d+$/), expect.stringMatching(/^lstm\.\d+$/)]));
    const lookbackStart = Date.parse('2017-11-25T00:00:00Z');
    for (const m of e.models) {
      // tfjs here, ONNX Runtime on the workers: the same score.
      expect(Math.abs(m.score - scored.get(customer)!.get(`${m.modelVersion}/${m.product}`)!)).toBeLessThan(1e-4);
      const lists = m.architecture === 'logistic' ? [] : [m.byGradient, ...(m.byAttention ? [m.byAttention] : [])];
      expect(m.byFeature?.length).toBe(3);
      expect(m.byAttention !== null).toBe(m.architecture === 'attention');
      for (const events of lists) {
        expect(events.length).toBe(Math.min(3, e.historyLength));
        for (const x of events) {
          expect(Date.parse(x.at)).toBeLessThan(Date.parse(`${e.asOf}T00:00:00Z`));
          expect(Date.parse(x.at)).toBeGreaterThanOrEqual(lookbackStart);
          expect(['pv', 'cart', 'fav', 'buy']).toContain(x.eventType);
        }
      }
      const contributions = m.byGradient.map((x) => x.contribution);
      expect(contributions).toEqual([...contributions].sort((a, b) => b - a));
    }
    const text = await runCli(['explain', '--account', 'taobao', '--date', DATE, '--conf', conf, '--customer', customer, '--product', 'any']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`customer ${customer}`);
    expect(text.stdout).toMatch(/^lstm\.any .* score 0\.\d{4}$/m);
    expect(text.stdout).toMatch(/^attention .* product any .*\n {2}attended to most/m);
    expect(text.stdout).not.toMatch(/^lstm\.\d+ /m);
  }, 60_000);

  test('explain: an id that was not scored that night, or a product no model scores, is a usage error naming it (exit 2)', async () => {
    const r = await runCli(['explain', '--account', 'taobao', '--date', DATE, '--conf', conf, '--customer', 'no-such-customer']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/customer "no-such-customer" is not among the 814 customers scored for 2017-12-02/);
    const p = await runCli(['explain', '--account', 'taobao', '--date', DATE, '--conf', conf, '--customer', '1000001', '--product', 'hats']);
    expect(p.code).toBe(2);
    expect(p.stderr).toMatch(/no model of this night scores product "hats": use one of any, \d+/);
  }, 60_000);

  test('a rerun of the same night finds the work done and commits the same bytes', async () => {
    const base = path.join(dir, 'out/predictions/account=taobao/date=2017-12-02/product=any');
    const before = JSON.parse(await readFile(path.join(base, '_manifest.json'), 'utf8')).files;
    const again = await runCli(['run', '--account', 'taobao', '--date', DATE, '--conf', conf]);
    expect(again.code).toBe(0);
    expect(JSON.parse(await readFile(path.join(base, '_manifest.json'), 'utf8')).files).toEqual(before);
  }, 120_000);
});

describe('nextbuy errors a user can act on', () => {
  test('--help lists the tasks and exits 0', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/nextbuy <task> --account ACCOUNT --date YYYY-MM-DD/);
  });

  test('an unknown task is a usage error (exit 2)', async () => {
    const r = await runCli(['frobnicate', '--account', 'taobao', '--date', DATE]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown task "frobnicate": use one of preprocess, train, score, evaluate, publish, run, backfill/);
  });

  test('a bad job field names the file and field (exit 3)', async () => {
    const { conf: bad } = await taobaoJob({ label: { horizonDays: 'two' } });
    const r = await runCli(['run', '--account', 'taobao', '--date', DATE, '--conf', bad]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/job\.yaml: label\.horizonDays must be a whole number of days ≥ 1, got "two"/);
  });

  test('a task whose inputs are missing says which task to run first (exit 4)', async () => {
    const { conf: fresh } = await taobaoJob();
    const r = await runCli(['score', '--account', 'taobao', '--date', DATE, '--conf', fresh]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/run 'nextbuy preprocess --account taobao --date 2017-12-02' first/);
  });

  test('an account that does not match the job file is refused (exit 2)', async () => {
    const r = await runCli(['run', '--account', 'other', '--date', DATE, '--conf', 'examples/taobao/job.yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--account other does not match the job file's account "taobao"/);
  });
});

describe('a night whose label window has not happened yet', () => {
  test('scores and publishes every customer, and evaluates on the training window’s validation customers instead', async () => {
    const { dir: night, conf: nightConf } = await taobaoJob({
      products: { overall: true, topCategories: 0 },
      model: { epochs: 1, embeddingDim: 4, hiddenUnits: 4, denseUnits: 4, batchSize: 256 },
      shards: { count: 2 },
    });
    // The sample ends on 2017-12-03 16:00 UTC: as of 2017-12-03, the 2-day label window is still open.
    const r = await runCli(['run', '--account', 'taobao', '--date', '2017-12-03', '--conf', nightConf]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/positives unknown yet \(label window not over\)/);
    expect(r.stdout).toMatch(/evaluation {2}on the validation customers of the training window \(labels 2017-12-01 \.\. 2017-12-02\)/);
    expect(r.stdout).toMatch(/published {3}1 partitions, 814 predictions/);
    const report = JSON.parse(await readFile(path.join(night, 'out/runs/account=taobao/date=2017-12-03/report/report.json'), 'utf8'));
    const any = report.products[0];
    expect(any.n).toBeGreaterThan(100);
    expect(any.n).toBeLessThan(814);
    expect(any.entries.map((e: { name: string }) => e.name)).toEqual(expect.arrayContaining(['lstm.any', 'attention', 'recency-frequency', 'logistic-counts']));
  }, 120_000);
});
