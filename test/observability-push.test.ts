/**
 * Metrics that outlive the pod: with observability.pushgateway set, `nextbuy run` PUTs the night's metrics
 * to a real Pushgateway (Debian's prometheus-pushgateway) under { job, account, date } at the end of every
 * run, successful or failed, and promtool (Debian's prometheus) finds nothing wrong with what it serves.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { parse, stringify } from 'yaml';
import { JobFileError } from '../core/errors.js';
import { compileJob, loadJob } from '../jobs/job-file.js';
import { acquireRunLock } from '../coordinator/pipeline/run-lock.js';
import { runFolder, type SummaryJson } from '../coordinator/pipeline/index.js';
import { ROOT, runCli } from './helpers/cli.js';
import { PROMTOOL, promtoolCheck, scrapePushgateway, withPushgateway, type Sample } from './helpers/metrics.js';
import { TINY_DATE, tinyEventsCsv, tinyJob, writeTinyRun } from './helpers/tiny-run.js';

/** The series of one pushed group ({job, account, date}), by name; the Pushgateway's own series left out. */
function group(samples: Sample[], job: string, date: string): Map<string, Sample[]> {
  const out = new Map<string, Sample[]>();
  for (const s of samples) {
    if (s.labels.job !== job || s.labels.account !== 'acme' || s.labels.date !== date) continue;
    if (s.name === 'push_time_seconds' || s.name === 'push_failure_time_seconds') continue;
    out.set(s.name, [...(out.get(s.name) ?? []), s]);
  }
  return out;
}

function one(g: Map<string, Sample[]>, name: string, labels: Record<string, string> = {}): number {
  const found = (g.get(name) ?? []).filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  expect(found, `${name} ${JSON.stringify(labels)}`).toHaveLength(1);
  return found[0]!.value;
}

test('a night pushes its figures under {job, account, date}; a failed rerun of the date replaces them with its exit code, its last success not advanced', async () => {
  await withPushgateway(async (url) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-push-'));
    const conf = await writeTinyRun(dir, {}, tinyJob(1, { observability: { pushgateway: { url, job: 'nightly' } } }));
    const before = Date.now() / 1000;
    const ok = await runCli(['run', '--account', 'acme', '--date', TINY_DATE, '--conf', conf, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const after = Date.now() / 1000;
    const summary = JSON.parse(ok.stdout) as SummaryJson;
    expect(JSON.parse(await readFile(path.join(summary.runDir, 'summary.json'), 'utf8'))).toMatchObject({ runId: summary.runId });

    const pushed = await scrapePushgateway(url);
    const g = group(pushed.samples, 'nightly', TINY_DATE);
    // Every series of the group carries the grouping key and the run id.
    for (const samples of g.values()) for (const s of samples) expect(s.labels).toMatchObject({ job: 'nightly', account: 'acme', date: TINY_DATE, run: summary.runId });

    const predictions = (g.get('nextbuy_predictions') ?? []).map((s) => [s.labels.product, s.value]);
    expect(Object.fromEntries(predictions)).toEqual(Object.fromEntries(summary.publish!.partitions.map((p) => [p.product, p.rows])));
    expect(predictions.reduce((a, [, n]) => a + (n as number), 0)).toBe(summary.publish!.partitions.reduce((a, p) => a + p.rows, 0));
    expect(predictions.length).toBe(2); // overall and the top category

    const stats = summary.preprocess!.stats;
    expect(one(g, 'nextbuy_input_rows_read')).toBe(stats.rowsRead);
    expect(one(g, 'nextbuy_input_rows_accepted')).toBe(stats.rowsAccepted);
    expect(one(g, 'nextbuy_input_rows_rejected')).toBe(Object.values(stats.rejected).reduce((a, n) => a + n, 0));
    expect(one(g, 'nextbuy_customers', { set: 'score' })).toBe(summary.preprocess!.score!.customers);
    expect(one(g, 'nextbuy_customers', { set: 'train' })).toBe(summary.preprocess!.train!.customers);
    for (const p of summary.evaluation!.products) {
      expect(one(g, 'nextbuy_product_positives', { product: p.product })).toBe(p.positives);
      const auc = p.published?.auc ?? p.ensemble.auc;
      if (auc !== null) expect(one(g, 'nextbuy_product_auc', { product: p.product })).toBeCloseTo(auc, 12);
    }
    expect(one(g, 'nextbuy_run_workers_lost')).toBe(summary.workers!.lost);
    for (const stage of ['validate', 'shards', 'train', 'score', 'evaluate', 'publish']) {
      expect(one(g, 'nextbuy_run_stage_duration_seconds', { stage })).toBeCloseTo(summary.timings[stage as keyof typeof summary.timings]! / 1000, 9);
    }
    const success = one(g, 'nextbuy_last_success_timestamp_seconds');
    expect(success).toBeGreaterThanOrEqual(before);
    expect(success).toBeLessThanOrEqual(after);
    expect(one(g, 'nextbuy_last_run_timestamp_seconds')).toBe(success);
    expect(one(g, 'nextbuy_last_run_exit_code')).toBe(0);
    expect(one(g, 'nextbuy_last_run_outcome', { outcome: 'success', stage: 'publish' })).toBe(1);
    expect(ok.stderr).toMatch(/metrics\.pushed/);

    const lint = await promtoolCheck(pushed.text);
    expect(lint, lint.output).toEqual({ code: 0, output: '' });

    // The same date again, from input with too many rejected rows: the run fails in preprocess (exit 4).
    await writeFile(path.join(dir, 'events.csv'), tinyEventsCsv({ unknownEvents: 400 }));
    const failed = await runCli(['run', '--account', 'acme', '--date', TINY_DATE, '--conf', conf]);
    expect(failed.code, failed.stderr).toBe(4);
    const afterFailure = await scrapePushgateway(url);
    const relint = await promtoolCheck(afterFailure.text);
    expect(relint, relint.output).toEqual({ code: 0, output: '' });
    const again = group(afterFailure.samples, 'nightly', TINY_DATE);
    expect(one(again, 'nextbuy_last_run_exit_code')).toBe(4);
    expect(one(again, 'nextbuy_last_run_outcome', { outcome: 'failed', stage: 'preprocess' })).toBe(1);
    expect(one(again, 'nextbuy_last_run_timestamp_seconds')).toBeGreaterThanOrEqual(success);
    // Not advanced: the date's predictions stay committed from the first run, and that is when they were.
    const carried = one(again, 'nextbuy_last_success_timestamp_seconds');
    expect(carried).toBeGreaterThanOrEqual(before);
    expect(carried).toBeLessThanOrEqual(success);
    // PUT: the group is the failed run's alone; none of the earlier run's figures stay.
    expect(new Set([...again.values()].flat().map((s) => s.labels.run)).size).toBe(1);
    expect(again.has('nextbuy_predictions')).toBe(false);
    expect(again.has('nextbuy_product_auc')).toBe(false);

    // A run refused by the date's lock (exit 10) pushes nothing: the group is the lock holder's business.
    const lock = await acquireRunLock({ outDir: path.join(dir, 'out'), account: 'acme', date: TINY_DATE, command: 'test' });
    try {
      const refused = await runCli(['run', '--account', 'acme', '--date', TINY_DATE, '--conf', conf]);
      expect(refused.code, refused.stderr).toBe(10);
    } finally {
      await lock.release();
    }
    const unchanged = group((await scrapePushgateway(url)).samples, 'nightly', TINY_DATE);
    expect(one(unchanged, 'nextbuy_last_run_timestamp_seconds')).toBe(one(again, 'nextbuy_last_run_timestamp_seconds'));
    expect(one(unchanged, 'nextbuy_last_run_exit_code')).toBe(4);
  });
}, 300_000);

describe('observability in the job file', () => {
  const base = tinyJob(0);
  const load = (observability: unknown) => compileJob({ ...base, observability }, '/jobs/acme/job.yaml');
  const message = (observability: unknown) => {
    try {
      load(observability);
    } catch (e) {
      expect(e).toBeInstanceOf(JobFileError);
      return (e as Error).message;
    }
    throw new Error('loaded');
  };

  test('defaults to neither; a Pushgateway gets job "nextbuy" unless named; the textfile path is relative to the job file', () => {
    expect(compileJob(base, '/jobs/acme/job.yaml').observability).toEqual({ pushgateway: null, textfile: null });
    expect(load({ pushgateway: { url: 'http://pg:9091' } }).observability).toEqual({ pushgateway: { url: 'http://pg:9091', job: 'nextbuy' }, textfile: null });
    expect(load({ pushgateway: { url: 'https://pg.example.com/push', job: 'acme-nightly' }, textfile: 'metrics/nextbuy.prom' }).observability).toEqual({
      pushgateway: { url: 'https://pg.example.com/push', job: 'acme-nightly' },
      textfile: '/jobs/acme/metrics/nextbuy.prom',
    });
  });

  test('where the metrics go is no part of the run id: configuring it finds the dates already committed', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-push-id-'));
    const without = runFolder(await loadJob(await writeTinyRun(dir, {}, tinyJob(1))), TINY_DATE).runId;
    const observability = { pushgateway: { url: 'http://pg:9091', job: 'other' }, textfile: 'x.prom' };
    const withMetrics = runFolder(await loadJob(await writeTinyRun(dir, {}, tinyJob(1, { observability }))), TINY_DATE).runId;
    expect(withMetrics).toBe(without);
  });

  test('mistakes name the field and say what is expected', () => {
    expect(message({ pushgateway: {} })).toBe('/jobs/acme/job.yaml: observability.pushgateway.url is required');
    expect(message({ pushgateway: { url: 'pg:9091' } })).toMatch(/observability\.pushgateway\.url must be an http:\/\/ or https:\/\/ URL like 'http:\/\/pushgateway:9091', got "pg:9091"/);
    expect(message({ pushgateway: { url: 'ftp://pg' } })).toMatch(/observability\.pushgateway\.url must be an http/);
    expect(message({ pushgateway: { url: 'http://pg:9091', job: 'a/b' } })).toMatch(/observability\.pushgateway\.job must be letters, digits/);
    expect(message({ pushgateway: { url: 'http://pg:9091', grouping: {} } })).toMatch(/observability\.pushgateway\.grouping is not a known field; known here: url, job/);
    expect(message({ pushgateway: 'http://pg:9091' })).toMatch(/observability\.pushgateway must be a mapping/);
    expect(message({ textfile: 'nextbuy.txt' })).toMatch(/observability\.textfile must end in \.prom .*got "nextbuy\.txt"/);
    expect(message({ textfile: 's3://bucket/x.prom' })).toMatch(/observability\.textfile is a s3:\/\/ URL/);
    expect(message({ prometheus: true })).toMatch(/observability\.prometheus is not a known field; known here: pushgateway, textfile/);
  });
});

test("README's alerts fire on an account whose newest night is older than 26 h, and on a failed date, and not otherwise", async () => {
  const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
  const block = /```yaml\n(# Prometheus alerting rules[\s\S]*?)```/.exec(readme);
  expect(block, 'the alerting rules in README "Metrics"').not.toBeNull();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-alerts-'));
  await writeFile(path.join(dir, 'rules.yaml'), stringify({ groups: [{ name: 'nextbuy', rules: parse(block![1]!) }] }));
  // One sample an hour: acme succeeded once at t = 0; beta at 0 for one date and from 24 h on for the next;
  // gamma's date failed (exit 4) and was never rerun.
  const success = (account: string, date: string, values: string) => ({ series: `nextbuy_last_success_timestamp_seconds{account="${account}",date="${date}"}`, values });
  await writeFile(path.join(dir, 'test.yaml'), stringify({
    rule_files: ['rules.yaml'],
    evaluation_interval: '1h',
    tests: [{
      interval: '1h',
      input_series: [
        success('acme', '2024-05-09', '0x40'),
        success('beta', '2024-05-09', '0x40'),
        success('beta', '2024-05-10', '_x23 86400x17'),
        success('gamma', '2024-05-10', '90000x40'),
        { series: 'nextbuy_last_run_exit_code{account="gamma",date="2024-05-11"}', values: '4x40' },
        { series: 'nextbuy_last_run_exit_code{account="acme",date="2024-05-09"}', values: '0x40' },
      ],
      alert_rule_test: [
        { eval_time: '20h', alertname: 'NextbuyNightMissing', exp_alerts: [] },
        {
          eval_time: '30h',
          alertname: 'NextbuyNightMissing',
          exp_alerts: [{ exp_labels: { account: 'acme', severity: 'page' }, exp_annotations: { summary: 'nextbuy acme: last successful night 1d 6h 0m 0s ago' } }],
        },
        {
          eval_time: '30h',
          alertname: 'NextbuyNightFailed',
          exp_alerts: [{ exp_labels: { account: 'gamma', date: '2024-05-11' }, exp_annotations: { summary: 'nextbuy gamma 2024-05-11 failed with exit code 4' } }],
        },
      ],
    }],
  }));
  const result = await new Promise<{ code: number; output: string }>((resolve) =>
    execFile(PROMTOOL, ['test', 'rules', 'test.yaml'], { cwd: dir }, (e, stdout, stderr) => resolve({ code: e ? (e.code as number) : 0, output: stdout + stderr })),
  );
  expect(result, result.output).toMatchObject({ code: 0 });
  expect(result.output).toMatch(/SUCCESS/);
});
