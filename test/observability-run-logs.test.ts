/**
 * One log shape for a whole night: the real CLI runs a small night with two local worker processes, and
 * every stderr line — the coordinator's and the workers' — is one JSON record with the same keys, naming
 * the run; no customer id, no tfjs console notice and no per-model ONNX Runtime line at the default level,
 * and one coordinator line says which runtimes the workers use. The workers train on tfjs's plain
 * JavaScript backend here, the one whose first tensor makes tfjs print its "use tfjs-node" notice.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCli, type CliResult } from './helpers/cli.js';
import { TINY_DATE, tinyJob, writeTinyRun } from './helpers/tiny-run.js';

/** Customer ids no other text of a run could contain by chance. */
const CUSTOMERS = Array.from({ length: 12 }, (_, i) => `QZ${7100 + i}XV`);
const ENV = { NEXTBUY_LOG: '', NEXTBUY_LOG_FORMAT: '', NEXTBUY_TFJS_RUNTIMES: 'tfjs-cpu' };

type Record_ = Record<string, unknown>;

/** One LSTM per product, trained on the workers (the count models train on the coordinator). */
const MODEL = { architectures: ['lstm'], epochs: 1, embeddingDim: 4, hiddenUnits: 4, denseUnits: 4, batchSize: 32 };

async function night(dir: string, args: string[], workers: number): Promise<CliResult> {
  const conf = await writeTinyRun(dir, { customers: CUSTOMERS }, tinyJob(1, { cluster: { workers }, model: MODEL }));
  return runCli(['run', '--account', 'acme', '--date', TINY_DATE, '--conf', conf, ...args], { env: ENV });
}

const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '');

describe('a night logged with --log-format json', () => {
  let dir: string;
  let run: CliResult;
  let records: Record_[];
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-logs-'));
    run = await night(dir, ['--log-format', 'json', '--json'], 2);
    records = lines(run.stderr).map((l) => JSON.parse(l) as Record_);
  }, 120_000);
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('every stderr line, coordinator and workers alike, is a JSON record with level, time and event, naming account, date and run', () => {
    expect(run.code, run.stderr).toBe(0);
    const runId = (JSON.parse(run.stdout) as { runId: string }).runId;
    for (const line of lines(run.stderr)) expect(() => JSON.parse(line), line).not.toThrow();
    expect(records.length).toBeGreaterThan(10);
    for (const r of records) {
      expect(r, JSON.stringify(r)).toMatchObject({ account: 'acme', date: TINY_DATE, run: runId });
      expect(['debug', 'info', 'warn', 'error']).toContain(r.level);
      expect(typeof r.event).toBe('string');
      expect(new Date(String(r.time)).toISOString()).toBe(r.time);
    }
    // Both worker processes logged, in the same shape, through the coordinator.
    const workers = new Set(records.filter((r) => r.worker !== undefined).map((r) => r.worker));
    expect([...workers].sort()).toEqual(['local-0', 'local-1']);
    expect(records.some((r) => r.worker !== undefined && r.event === 'registered')).toBe(true);
  });

  test('no line carries a customer id of the input', () => {
    for (const id of CUSTOMERS) expect(run.stderr + run.stdout).not.toContain(id);
  });

  test("at the default level: no tfjs console notice, no ONNX Runtime line per model; one coordinator line names the workers' runtimes", () => {
    expect(run.stderr).not.toMatch(/TensorFlow\.js|tfjs-node for more details|={10}/);
    expect(records.filter((r) => r.event === 'model.runtime' || /scores with/.test(JSON.stringify(r)))).toEqual([]);
    const said = records.filter((r) => r.event === 'workers.runtimes');
    expect(said).toHaveLength(1);
    expect(said[0]!.worker).toBeUndefined(); // the coordinator's
    expect(said[0]).toMatchObject({ workers: 2 });
    expect(String(said[0]!.runtimes)).toMatch(/^onnxruntime-\w+, tfjs-cpu \(local-[01], local-[01]\)$/);
  });
});

test('--log-format human: the coordinator and its workers write short lines, none of them JSON', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-logs-'));
  try {
    const run = await night(dir, ['--log-format', 'human'], 1);
    expect(run.code, run.stderr).toBe(0);
    const out = lines(run.stderr);
    expect(out.filter((l) => l.trimStart().startsWith('{'))).toEqual([]);
    expect(out.every((l) => /^\[\d\d:\d\d:\d\d\] (DEBUG|INFO|WARN|ERROR): \S/.test(l)), out.join('\n')).toBe(true);
    expect(out).toContainEqual(expect.stringMatching(/INFO: registered worker=local-0 /));
    expect(out).toContainEqual(expect.stringMatching(/INFO: workers\.runtimes workers=1 runtimes="onnxruntime-\w+, tfjs-cpu \(local-0\)"/));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 120_000);
