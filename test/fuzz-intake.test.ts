/**
 * Fuzzing the intake: mutated CSV and Parquet files (truncated, bit-flipped, wrong types, huge fields,
 * invalid UTF-8) go through the real preprocess stage (DuckDB). Each ends in an InputError (or another
 * NextbuyError), or runs with every row read either accepted or counted as rejected (and quarantined) —
 * never another exception or a hang. (Shards a failed run leaves in its run folder are never used:
 * the pipeline marks preprocess done only on success.)
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { preprocess } from '../coordinator/preprocess/index.js';
import { compileJob } from '../jobs/job-file.js';
import { fuzz, scaledCases } from './fuzz/mutate.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-fuzz-intake-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function intakeJob(input: string, format: 'csv' | 'parquet') {
  return compileJob(
    {
      account: 'fuzz',
      input: { path: path.basename(input), format },
      columns: { customer: 'user_id', time: 'timestamp', eventType: 'behavior_type', item: 'item_id', category: 'category_id' },
      events: { types: ['pv', 'cart', 'fav', 'buy'], purchase: 'buy' },
      validation: { maxRejectedShare: 0.5 },
      label: { horizonDays: 1 },
      sequence: { lookbackDays: 7, maxLength: 10 },
      vocabulary: { minCount: 1, maxSize: 1000 },
      shards: { count: 2, batchRows: 16 },
      resources: { memoryLimit: '256MB', threads: 1 },
    },
    path.join(path.dirname(input), 'job.yaml'),
  );
}

async function runIntake(format: 'csv' | 'parquet', input: Uint8Array, n: number): Promise<void> {
  const caseDir = path.join(dir, `${format}-${n}`);
  await mkdir(caseDir, { recursive: true });
  const file = path.join(caseDir, `events.${format}`);
  await writeFile(file, input);
  const runDir = path.join(caseDir, 'run');
  try {
    const r = await preprocess({ job: intakeJob(file, format), scoreDate: '2017-12-02', runDir });
    const rejected = Object.values(r.stats.rejected).reduce((a, b) => a + b, 0);
    // Every row read is accounted for: accepted, or rejected with a reason (and then in the quarantine).
    expect(r.stats.rowsAccepted + rejected).toBe(r.stats.rowsRead);
    if (rejected > 0) expect(r.stats.quarantineFile).not.toBeNull();
  } finally {
    await rm(caseDir, { recursive: true, force: true });
  }
}

for (const [format, cases, seed] of [['csv', 60, 101], ['parquet', 50, 202]] as const) {
  test(`every mutated ${format} input is read with each row accounted for, or refused with an InputError`, async () => {
    let n = 0;
    const report = await fuzz({
      target: format,
      cases: scaledCases(cases),
      seed,
      timeoutMs: 30_000,
      mutate: { hugeBytes: 2 << 20 },
      run: (input) => runIntake(format, input, n++),
    });
    if (report.findings.length) console.error(report.findings.join('\n'));
    expect(report.findings).toEqual([]);
    expect(report.outcomes.ok).toBeGreaterThan(0);
  }, 110_000);
}
