/**
 * The node-exporter alternative: with observability.textfile set, a run writes the night's metrics to
 * that file (whole, by rename) for the textfile collector; and a Pushgateway that cannot be reached is a
 * warning in the log, never a failed night.
 */
import { mkdir, mkdtemp, readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import type { SummaryJson } from '../coordinator/pipeline/index.js';
import { runCli } from './helpers/cli.js';
import { freePort, parseExposition, promtoolCheck } from './helpers/metrics.js';
import { TINY_DATE, tinyJob, writeTinyRun } from './helpers/tiny-run.js';

test('a run writes its metrics for node-exporter, and a Pushgateway that does not answer is only a warning', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-textfile-'));
  await mkdir(path.join(dir, 'textfile'));
  const nobody = `http://127.0.0.1:${await freePort()}`; // nothing listens there
  const conf = await writeTinyRun(dir, {}, tinyJob(1, { observability: { pushgateway: { url: nobody }, textfile: 'textfile/nextbuy.prom' } }));
  const r = await runCli(['run', '--account', 'acme', '--date', TINY_DATE, '--conf', conf, '--json']);
  expect(r.code, r.stderr).toBe(0);
  const summary = JSON.parse(r.stdout) as SummaryJson;
  const warning = r.stderr.split('\n').filter((l) => l.includes('metrics.push_failed'));
  expect(warning).toHaveLength(1);
  expect(JSON.parse(warning[0]!)).toMatchObject({ account: 'acme', date: TINY_DATE, pushgateway: `${nobody}/`, error: expect.stringMatching(/ECONNREFUSED/) });

  // Only the file itself: the temporary file was renamed over it.
  expect(await readdir(path.join(dir, 'textfile'))).toEqual(['nextbuy.prom']);
  const text = await readFile(path.join(dir, 'textfile', 'nextbuy.prom'), 'utf8');
  const lint = await promtoolCheck(text);
  expect(lint, lint.output).toEqual({ code: 0, output: '' });
  const { types, samples } = parseExposition(text);
  expect([...types.values()].every((t) => t === 'gauge')).toBe(true);
  for (const s of samples) expect(s.labels).toMatchObject({ account: 'acme', date: TINY_DATE, run: summary.runId });
  const predictions = samples.filter((s) => s.name === 'nextbuy_predictions');
  expect(predictions.reduce((a, s) => a + s.value, 0)).toBe(summary.publish!.partitions.reduce((a, p) => a + p.rows, 0));
  expect(predictions.length).toBe(summary.publish!.partitions.length);
  expect(samples.find((s) => s.name === 'nextbuy_last_success_timestamp_seconds')?.value).toBe(samples.find((s) => s.name === 'nextbuy_last_run_timestamp_seconds')?.value);
  expect(samples.find((s) => s.name === 'nextbuy_last_run_outcome')?.labels).toMatchObject({ outcome: 'success', stage: 'publish' });
}, 300_000);
