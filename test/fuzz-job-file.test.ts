/**
 * Fuzzing the job-file loader: mutated YAML (bit flips, truncation, splices, huge fields, invalid UTF-8,
 * values of the wrong type) either loads into a Job or is refused with a JobFileError naming the field.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { JobFileError } from '../core/errors.js';
import { loadJob } from '../jobs/job-file.js';
import { fuzz, scaledCases } from './fuzz/mutate.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-fuzz-job-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

test('every mutated job file loads or is refused with a JobFileError', async () => {
  const file = path.join(dir, 'job.yaml');
  const report = await fuzz({
    target: 'job',
    cases: scaledCases(400),
    seed: 20261123,
    timeoutMs: 10_000,
    mutate: { hugeBytes: 256 * 1024 },
    accept: (e) => e instanceof JobFileError,
    run: async (input) => {
      await writeFile(file, input);
      const job = await loadJob(file);
      // What loads is whole: the fields later stages rely on are there and sane.
      expect(job.account).toMatch(/^[a-z0-9][a-z0-9_-]*$/);
      expect(path.isAbsolute(job.input.path)).toBe(true);
      expect(job.events.types).toContain(job.events.purchase);
    },
  });
  if (report.findings.length) console.error(report.findings.join('\n'));
  expect(report.findings).toEqual([]);
  expect(report.outcomes.ok).toBeGreaterThan(0); // the seeds (at least) load
  expect(report.outcomes.JobFileError).toBeGreaterThan(report.cases / 4);
});
