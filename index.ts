/**
 * nextbuy as a library: `import { loadJob, runDate, backfill, readPredictions, explain } from 'nextbuy'`.
 * The same entry points the `nextbuy` command runs, with the options it passes them; `npm run build`
 * compiles this file (and what it imports) to dist/index.js with its declarations.
 */
import { NextbuyError } from './core/errors.js';
import { PIPELINE, runDate as runPipeline, type PipelineTask, type RunOptions, type RunSummary } from './coordinator/pipeline/index.js';
import { committedPartitions, readPartition, type PartitionManifest, type PredictionRow } from './coordinator/publish/index.js';
import { explainCustomer, type CustomerExplanation, type ExplainCustomerOptions } from './coordinator/explain/index.js';
import { backfill as backfillDates, type BackfillOptions as PipelineBackfillOptions, type BackfillRow } from './jobs/backfill.js';
import { loadJob } from './jobs/job-file.js';
import type { Job } from './jobs/job.js';

export { loadJob, compileJob, checkJobFile } from './jobs/job-file.js';
export { jobFileSchema, jobFileJsonSchemaText } from './jobs/job-schema.js';
export type { Job, JobFile, Architecture, ActionRule } from './jobs/job.js';
export { PIPELINE, summaryJson, SUMMARY_FORMAT_VERSION, runFolder } from './coordinator/pipeline/index.js';
export type { PipelineTask, RunSummary, SummaryJson, RunFolder, EvaluationSummary } from './coordinator/pipeline/index.js';
export type { PredictionRow, PartitionManifest } from './coordinator/publish/index.js';
export type { BackfillRow } from './jobs/backfill.js';
export type { CustomerExplanation, ModelExplanation, EventView, FeatureView } from './coordinator/explain/index.js';
export {
  EXIT_CODES, NextbuyError, UsageError, JobFileError, InputError, ClusterError, ModelError, PublishError, ProtocolError, SecurityError, LockedError, StoppedError,
  type ErrorCode,
} from './core/errors.js';

/** A compiled job (from `loadJob`), or the path of its YAML job file (loaded and checked first). */
export type JobInput = Job | string;

async function jobOf(job: JobInput): Promise<Job> {
  return typeof job === 'string' ? loadJob(job) : job;
}

export interface RunDateOptions {
  /** The job to run. */
  job: JobInput;
  /** The night, YYYY-MM-DD: features use events before it, labels the horizon after it. */
  date: string;
  /** Which tasks to run; each reads what the earlier ones left in the run folder. @default PIPELINE (preprocess, train, score, evaluate, publish) */
  tasks?: PipelineTask[];
  /** Where the workers run: local processes, or Kubernetes pods (see the README's Kubernetes section). @default 'local' */
  env?: 'local' | 'k8s';
  /** Worker count, overriding the job's cluster.workers. @default job.cluster.workers */
  workers?: number | null;
  /** Build from input the freshness gate finds stale. @default false */
  allowStale?: boolean;
  /** Aborting it stops the run gracefully: in-flight work finishes, state is saved, the same call resumes it. @default none */
  stop?: AbortSignal;
  /** Progress: a stage started, ended (with its milliseconds) or was skipped (done by an earlier run). @default none */
  onStage?: RunOptions['onStage'];
  /** Progress: a model finished an epoch with this validation AUC. @default none */
  onEpoch?: RunOptions['onEpoch'];
  /** Progress: shards scored so far of all. @default none */
  onScoreProgress?: RunOptions['onScoreProgress'];
}

/**
 * Runs one account and date end to end (or the tasks named), as `nextbuy run` does, and returns what
 * happened. Rejects with a NextbuyError whose `exitCode` is the CLI's.
 */
export async function runDate(o: RunDateOptions): Promise<RunSummary> {
  return runPipeline({ ...o, job: await jobOf(o.job), tasks: o.tasks ?? PIPELINE, env: o.env ?? 'local', workers: o.workers ?? null });
}

export interface BackfillOptions extends Omit<RunDateOptions, 'date' | 'onStage' | 'onEpoch' | 'onScoreProgress'> {
  /** First date, YYYY-MM-DD. */
  from: string;
  /** Last date, YYYY-MM-DD (included). */
  to: string;
  /** Dates run at once. @default 1 */
  parallel?: number;
  /** Rerun dates already committed by this job configuration. @default false */
  force?: boolean;
  /** Called as each date starts, is skipped, ends or fails. @default none */
  onDate?: PipelineBackfillOptions['onDate'];
}

/**
 * Runs every date from `from` to `to`, as `nextbuy backfill` does: dates this job configuration already
 * committed are skipped, so calling it again after an interruption resumes. Resolves with one row per date
 * (failures included, with the exit code the CLI would give); it does not reject for a failed date.
 */
export async function backfill(o: BackfillOptions): Promise<BackfillRow[]> {
  return backfillDates({ ...o, job: await jobOf(o.job), tasks: o.tasks ?? PIPELINE, env: o.env ?? 'local' });
}

export interface ReadPredictionsOptions {
  /** The job whose output folder and account to read. */
  job: JobInput;
  /** The night, YYYY-MM-DD. */
  date: string;
  /** Only this product (e.g. 'any', or a category). @default every product committed for the date */
  product?: string;
}

export interface ProductPredictions {
  product: string;
  /** The partition's manifest: row count, checksums, model versions, run id. */
  manifest: PartitionManifest;
  /** In rank order (1 = the highest score). */
  rows: PredictionRow[];
}

/**
 * A night's published predictions, read as the warehouse would: only committed partitions, each data file
 * checked against its manifest's size and sha256. Products never published for the date are absent.
 */
export async function readPredictions(o: ReadPredictionsOptions): Promise<ProductPredictions[]> {
  const job = await jobOf(o.job);
  const products = o.product !== undefined ? [o.product] : (await committedPartitions(job.output.dir, job.account, o.date, { verify: false })).map((p) => p.product);
  const out: ProductPredictions[] = [];
  for (const product of products) {
    const contents = await readPartition(job.output.dir, job.account, o.date, product);
    if (contents) out.push({ product, manifest: contents.manifest, rows: contents.rows });
  }
  return out;
}

export interface ExplainOptions extends Omit<ExplainCustomerOptions, 'job' | 'log'> {
  /** The job whose scored night to explain. */
  job: JobInput;
  /** Where the one line naming the tfjs runtime goes. @default stderr */
  log?: ExplainCustomerOptions['log'];
}

/**
 * Why a customer got their scores on a scored night (`nextbuy explain`): per model, the score and the
 * events and aggregate features that raised it most.
 */
export async function explain(o: ExplainOptions): Promise<CustomerExplanation> {
  return explainCustomer({ ...o, job: await jobOf(o.job) });
}

/** The exit code the `nextbuy` command gives for an error (1 for one that is not a NextbuyError). */
export function exitCodeOf(e: unknown): number {
  return e instanceof NextbuyError ? e.exitCode : 1;
}
