/**
 * No customer data in logs: a full local run of the real CLI on the Taobao sample (coordinator and worker
 * processes) at info and at debug level print counts and ids of shards, never a
 * customer id. The sample's customer ids are 7-digit numbers; we look for the most active ones, which
 * pass through every stage (validation, sequences, scoring, publish).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { beforeAll, describe, expect, test } from 'vitest';
import { ROOT, runCli, taobaoJob, type CliResult } from './helpers/cli.js';

/** The `n` customers with the most events in the sample, 7-digit ids only (short ids would match any number). */
function busiestCustomers(n: number): string[] {
  const text = gunzipSync(readFileSync(path.join(ROOT, 'examples/taobao/events.csv.gz'))).toString('utf8');
  const counts = new Map<string, number>();
  for (const line of text.split('\n').slice(1)) {
    const id = line.slice(0, line.indexOf(','));
    if (/^\d{7}$/.test(id)) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, n).map(([id]) => id);
}

function leaked(output: string, ids: string[]): string[] {
  return ids.filter((id) => new RegExp(`(^|[^0-9])${id}([^0-9]|$)`).test(output));
}

describe('logs carry no customer ids', () => {
  const ids = busiestCustomers(12);
  let conf: string;
  let run: CliResult;
  let debugRun: CliResult;
  beforeAll(async () => {
    ({ conf } = await taobaoJob({
      products: { overall: true, topCategories: 1 },
      model: { architectures: ['lstm'], epochs: 1, embeddingDim: 4, hiddenUnits: 4, denseUnits: 4, batchSize: 256 },
      shards: { count: 2 },
      cluster: { workers: 2 },
    }));
    run = await runCli(['run', '--account', 'taobao', '--date', '2017-12-02', '--conf', conf], { env: { NEXTBUY_LOG: 'info' } });
    debugRun = await runCli(['run', '--account', 'taobao', '--date', '2017-12-01', '--conf', conf], { env: { NEXTBUY_LOG: 'debug' } });
  }, 240_000);

  test('the ids searched for are real customers of the sample', () => {
    expect(ids).toHaveLength(12);
    const sample = gunzipSync(readFileSync(path.join(ROOT, 'examples/taobao/events.csv.gz'))).toString('utf8');
    expect(leaked(sample, ids)).toEqual(ids); // the search finds them where they are
  });

  test('a full local run at info level prints none of them, on stdout or stderr', () => {
    expect(run.code).toBe(0);
    expect(run.stderr.length).toBeGreaterThan(0); // there were log lines to search
    expect(leaked(run.stdout, ids)).toEqual([]);
    expect(leaked(run.stderr, ids)).toEqual([]);
  });

  test('a full run at debug level does not print them either (no flag turns customer ids on)', () => {
    expect(debugRun.code).toBe(0);
    expect(debugRun.stderr.length).toBeGreaterThan(0);
    expect(leaked(debugRun.stdout + debugRun.stderr, ids)).toEqual([]);
  });
});
