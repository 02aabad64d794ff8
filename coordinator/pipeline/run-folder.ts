/**
 * Where one account/date run keeps its state, so that each task can run on its own (preprocess, then
 * train, …) and a killed coordinator resumes instead of starting over:
 *
 *   <out>/runs/account=<a>/date=<d>/
 *     run.json              run id, job fingerprint, what each task finished (written atomically)
 *     preprocess.json       stats, vocabulary, products, shard sets
 *     train/ score/         shard files (Arrow IPC streams)
 *     models/<version>/     model artifacts;  models.json: which models the run trained
 *     scores/<shard>.arrow  accepted results, one file per scored shard (its presence = shard done)
 *     report/               report.html, report.json
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Job } from '../../jobs/job.js';
import { inputContentFingerprint, listInput, type InputListing } from './input-fingerprint.js';

export interface RunFolder {
  account: string;
  date: string;
  /**
   * Deterministic: the same account, date, job configuration and input (file names and sizes) give the same
   * run id wherever the job file and data lie (reruns replace, never add).
   */
  runId: string;
  dir: string;
  modelsDir: string;
  scoresDir: string;
  reportDir: string;
  outDir: string;
}

/** `listing`: the input as listed by the caller (listed here when absent). */
export function runFolder(job: Job, date: string, listing: InputListing = listInput(job.input.path, job.output.dir)): RunFolder {
  const dir = path.join(job.output.dir, 'runs', `account=${job.account}`, `date=${date}`);
  return {
    account: job.account,
    date,
    runId: `${job.account}-${date.replaceAll('-', '')}-${jobFingerprint(job, listing).slice(0, 10)}`,
    dir,
    modelsDir: path.join(dir, 'models'),
    scoresDir: path.join(dir, 'scores'),
    reportDir: path.join(dir, 'report'),
    outDir: job.output.dir,
  };
}

/**
 * A hash of everything in the job that changes results, and of the input's content fingerprint in place of
 * its path: not where the job file, input or outputs lie, nor how many workers run it or how they connect,
 * nor where its metrics go.
 */
export function jobFingerprint(job: Job, listing: InputListing): string {
  const { output: _output, cluster: _cluster, file: _file, resources: _resources, security: _security, observability: _observability, ...rest } = job;
  const settings = { ...rest, input: { ...rest.input, path: inputContentFingerprint(listing) } };
  return createHash('sha256').update(JSON.stringify(settings)).digest('hex');
}

export async function readJson<T>(file: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}
