/**
 * One account and date, end to end: preprocess → train → score → evaluate (with the ensemble) → publish.
 * Each task reads what the earlier ones left in the run folder, so tasks can run one at a time, and a
 * rerun after a crash resumes: finished tasks are skipped, training resumes from its last checkpoint,
 * scored shards are not scored again, and the publish commit replaces a partition whole.
 */
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { describeIoError, InputError, isSystemIoError, LockedError, ModelError, NextbuyError, PublishError, StoppedError } from '../../core/errors.js';
import { makeDir, PRIVATE_MODES, withFileModes } from '../../core/file-modes.js';
import { log, withLogContext } from '../../core/log.js';
import { metrics } from '../../core/metrics.js';
import { DEFAULT_RETAIN, type Job } from '../../jobs/job.js';
import { preprocess, type PreprocessResult } from '../preprocess/index.js';
import { runFolder, type RunFolder } from './run-folder.js';
import { inputChangeFingerprint, listInput, type InputListing } from './input-fingerprint.js';
import { removeTempFiles, writeFileDurably, writeJsonDurably } from '../../core/durable-fs.js';
import { audienceDir, dateDir } from '../publish/index.js';
import { acquireRunLock } from './run-lock.js';
import { acquireRunLease, checkK8sPrerequisites, compileK8sBackendOptions, connectApi, loadK8sBackendOptions, type RunLease } from '../cluster/index.js';
import { files, readState, requireJson, writeState, type ModelsFile, type RunState, type StageName } from './state.js';
import { startWorkers, type WorkerSession } from './workers.js';
import type { WorkerEventCounts } from './worker-events.js';
import { loadArtifactFiles } from './artifacts.js';
import { trainStage } from './train-stage.js';
import { evaluateStage, type EvaluationSummary, type NightScores } from './evaluate-stage.js';
import { publishStage, type PublishSummary } from './publish-stage.js';
import { scorePreviousChampion } from './previous-champion.js';
import { applyRetention } from './retention.js';
import { summaryJson } from './summary-file.js';
import { exportNightMetrics } from './night-metrics.js';

export type { RunFolder } from './run-folder.js';
export { runFolder } from './run-folder.js';
export { evaluationSummary, type EvaluationSummary } from './evaluate-stage.js';
export { watchWorkers, type WorkerEventCounts, type WorkerWatch } from './worker-events.js';
export { applyRetention, formatRetention, type RetentionOptions, type RetentionResult } from './retention.js';
export { summaryJson, SUMMARY_FORMAT_VERSION, type SummaryJson } from './summary-file.js';
export { files as runFiles, requireJson, type ModelEntry, type ModelsFile } from './state.js';

export type PipelineTask = 'preprocess' | 'train' | 'score' | 'evaluate' | 'publish';
export const PIPELINE: PipelineTask[] = ['preprocess', 'train', 'score', 'evaluate', 'publish'];

export interface RunOptions {
  job: Job;
  date: string;
  tasks: PipelineTask[];
  env: 'local' | 'k8s';
  /** Override job.cluster.workers. */
  workers?: number | null;
  /** Called as stages start and finish (or are skipped: done by an earlier run of the same night), for progress output. */
  onStage?: (stage: string, event: 'start' | 'end' | 'skipped', ms?: number) => void;
  onEpoch?: (model: string, epoch: number, validationAuc: number) => void;
  /** Called as shards are scored: (done, total). */
  onScoreProgress?: (done: number, total: number) => void;
  /** Build from input the freshness gate finds stale (recorded in preprocess.json's stats.freshness). @default false */
  allowStale?: boolean;
  /**
   * A graceful stop (the CLI aborts it on SIGTERM/SIGINT): no new task starts, no more shards are leased,
   * in-flight shards and the training round in flight finish, state is saved, workers are stopped, and
   * runDate rejects with the signal's reason. @default none
   */
  stop?: AbortSignal;
}

export interface RunSummary {
  account: string;
  date: string;
  runId: string;
  runDir: string;
  tasks: PipelineTask[];
  preprocess: PreprocessResult | null;
  models: ModelsFile | null;
  evaluation: EvaluationSummary | null;
  publish: PublishSummary | null;
  /** What happened to the workers of this invocation (null when it started none). */
  workers: WorkerEventCounts | null;
  timings: Partial<Record<StageName, number>>;
  totalMs: number;
}

/** Everything the run writes gets the job's output.mode (private by default), whatever the umask. */
export async function runDate(o: RunOptions): Promise<RunSummary> {
  // Every log line of the run, the workers' included, names its account and date (and run, once known).
  return withLogContext({ account: o.job.account, date: o.date }, () => withFileModes(o.job.output.mode ?? PRIVATE_MODES, () => runDateWithModes(o)));
}

/**
 * Ends every run, successful or failed, with its metrics (night-metrics.ts) where the job asks for them; not
 * a run refused by the date's lock, whose metrics group belongs to the run that holds it.
 */
async function runDateWithModes(o: RunOptions): Promise<RunSummary> {
  const progress: RunProgress = { runId: null, task: o.tasks[0] ?? 'preprocess', summary: null };
  const startedAtMs = Date.now();
  const record = (error: unknown) =>
    exportNightMetrics(o.job.observability, {
      outDir: o.job.output.dir, account: o.job.account, date: o.date, runId: progress.runId, tasks: o.tasks, stage: progress.task,
      summary: progress.summary, error, startedAtMs, endedAtMs: Date.now(),
    });
  let summary: RunSummary;
  try {
    summary = await runDateLocked(o, progress);
  } catch (e) {
    if (!(e instanceof LockedError)) await record(e);
    throw e;
  }
  await record(null);
  return summary;
}

/** How far a run got, for its metrics when it fails. */
interface RunProgress {
  runId: string | null;
  task: PipelineTask;
  summary: RunSummary | null;
}

async function runDateLocked(o: RunOptions, progress: RunProgress): Promise<RunSummary> {
  // Before anything is written: a laptop without a cluster fails here, not after preprocessing.
  if (o.env === 'k8s') await checkK8sPrerequisites({ job: o.job });
  const listing = listInput(o.job.input.path, o.job.output.dir);
  const folder = runFolder(o.job, o.date, listing);
  progress.runId = folder.runId;
  return withLogContext({ run: folder.runId }, () => runInFolder(o, folder, listing, progress));
}

async function runInFolder(o: RunOptions, folder: RunFolder, listing: InputListing, progress: RunProgress): Promise<RunSummary> {
  // The output folder leads to the published table too: when it is new, it gets the table's folder mode.
  await makeDir(folder.outDir, o.job.output.publishedMode ?? PRIVATE_MODES);
  const lock = await acquireRunLock({
    outDir: folder.outDir, account: folder.account, date: folder.date,
    command: o.tasks.length === PIPELINE.length ? 'run' : o.tasks.join(', '),
  });
  let summary: RunSummary;
  try {
    const lease = o.env === 'k8s' ? await k8sRunLease(folder) : null;
    try {
      summary = await runLocked(o, folder, listing, progress);
    } finally {
      await lease?.release();
    }
  } finally {
    await lock.release();
  }
  if (o.tasks.includes('publish')) await retainAfterRun(o.job, o.date);
  return summary;
}

/** output.retain after a run that published: relative to the run's date; a failure is logged, never fails the published night. */
async function retainAfterRun(job: Job, date: string): Promise<void> {
  const retain = job.output.retain ?? DEFAULT_RETAIN;
  if (retain.runsDays === null && retain.exportsDays === null) return;
  try {
    await applyRetention({ outDir: job.output.dir, account: job.account, runsDays: retain.runsDays, exportsDays: retain.exportsDays, today: date });
  } catch (e) {
    log.warn('retention.failed', { account: job.account, date, error: (e as Error).message, hint: "run 'nextbuy gc' to retry" });
  }
}

/** On Kubernetes, the date's Lease as well: coordinators in different pods may not share the output's lock file. */
async function k8sRunLease(folder: RunFolder): Promise<RunLease> {
  const options = await loadK8sBackendOptions();
  const api = await connectApi({ kubeConfig: options.kubeConfig, apiServer: options.apiServer, namespace: compileK8sBackendOptions(options).namespace });
  return acquireRunLease({ api, account: folder.account, date: folder.date, holder: process.env.POD_NAME ?? undefined });
}

async function runLocked(o: RunOptions, folder: RunFolder, listing: InputListing, progress: RunProgress): Promise<RunSummary> {
  const started = Date.now();
  let current: PipelineTask = o.tasks[0] ?? 'preprocess';
  const state = await (async () => {
    try {
      await makeDir(folder.dir);
      return await openState(o, folder, listing);
    } catch (e) {
      throw stageFailure(current, e);
    }
  })();
  /** Stages run by this invocation (state.timings keeps every stage's last run). */
  const timings: Partial<Record<StageName, number>> = {};
  let session: WorkerSession | null = null;
  let night: NightScores | null = null;
  const workers = async () => (session ??= await startWorkers({ job: o.job, env: o.env, runId: folder.runId, date: o.date, workers: o.workers ?? null }));
  const timed = async <T>(stage: StageName, fn: () => Promise<T>): Promise<T> => {
    o.onStage?.(stage, 'start');
    const t = Date.now();
    const stop = metrics.stageDuration.startTimer({ stage });
    try {
      return await fn();
    } finally {
      stop();
      timings[stage] = state.timings[stage] = Date.now() - t;
      o.onStage?.(stage, 'end', timings[stage]);
    }
  };
  const finish = async (task: PipelineTask, t0: number) => {
    state.done[task] = { at: new Date().toISOString(), ms: Date.now() - t0 };
    await writeState(folder, state);
  };

  const summary: RunSummary = {
    account: o.job.account, date: o.date, runId: folder.runId, runDir: folder.dir, tasks: o.tasks,
    preprocess: null, models: null, evaluation: null, publish: null, workers: null, timings, totalMs: 0,
  };
  progress.summary = summary;
  let failure: unknown = null;
  try {
    for (const task of o.tasks) {
      if (o.stop?.aborted) throw o.stop.reason;
      current = progress.task = task;
      const t0 = Date.now();
      if (task === 'preprocess') {
        if (state.done.preprocess) {
          summary.preprocess = await requireJson<PreprocessResult>(files(folder).preprocess, 'preprocess', folder);
          o.onStage?.('preprocess', 'skipped');
          continue;
        }
        o.onStage?.('preprocess', 'start');
        const result = await preprocess({ job: o.job, scoreDate: o.date, runDir: folder.dir, allowStale: o.allowStale });
        for (const [step, ms] of Object.entries(result.stats.timings)) timings[step as StageName] = state.timings[step as StageName] = ms;
        o.onStage?.('preprocess', 'end', Date.now() - t0);
        await writeJsonDurably(files(folder).preprocess, result);
        summary.preprocess = result;
        await finish(task, t0);
      } else if (task === 'train') {
        if (state.done.train) {
          summary.models = await requireJson<ModelsFile>(files(folder).models, 'train', folder);
          o.onStage?.('train', 'skipped');
          continue;
        }
        const pre = await requireJson<PreprocessResult>(files(folder).preprocess, 'preprocess', folder);
        summary.models = await timed('train', async () =>
          trainStage({ job: o.job, folder, pre, session: await workers(), onEpoch: o.onEpoch, stop: o.stop }),
        );
        await finish(task, t0);
      } else if (task === 'score') {
        if (state.done.score) {
          o.onStage?.('score', 'skipped');
          continue;
        }
        const pre = await requireJson<PreprocessResult>(files(folder).preprocess, 'preprocess', folder);
        const models = summary.models ?? (await modelsFor(folder));
        await timed('score', async () => {
          await scoreStage(folder, pre, models, await workers(), o.onScoreProgress, o.stop);
          await scorePreviousChampion({ job: o.job, folder, models, session: await workers() });
        });
        await finish(task, t0);
      } else if (task === 'evaluate') {
        const pre = await requireJson<PreprocessResult>(files(folder).preprocess, 'preprocess', folder);
        const models = summary.models ?? (await modelsFor(folder));
        const evaluated = await evaluateStage({
          job: o.job, folder, pre, models, timed, timings: state.timings,
          workers: () => session && { count: (session as WorkerSession).participants().length, events: (session as WorkerSession).workerEvents() },
        });
        summary.evaluation = evaluated.summary;
        night = evaluated.night;
        await finish(task, t0);
      } else if (task === 'publish') {
        const pre = await requireJson<PreprocessResult>(files(folder).preprocess, 'preprocess', folder);
        const models = summary.models ?? (await modelsFor(folder));
        summary.publish = await timed('publish', () => publishStage({ job: o.job, folder, pre, models, night, timings: state.timings }));
        await finish(task, t0);
      }
    }
    await removeLeftovers(folder);
  } catch (e) {
    failure = stageFailure(current, e);
    if (failure instanceof InputError && Object.keys(state.done).length === 0) {
      // Nothing was built: leave no run folder (a later run starts clean), but keep the quarantine the error names.
      if (session) await (session as WorkerSession).close().catch(() => undefined);
      await removeRunFolder(folder.dir);
      throw failure;
    }
  }
  // Cleanup never masks the first error: its own failure is logged then, and reported only when alone.
  let stateSaved = false;
  const cleanups: [string, () => Promise<unknown>][] = [
    ['stop workers', async () => {
      if (!session) return;
      summary.workers = (session as WorkerSession).workerEvents();
      await (session as WorkerSession).close();
    }],
    ['save run state', async () => {
      await writeState(folder, state);
      stateSaved = true;
    }],
  ];
  for (const [what, cleanup] of cleanups) {
    try {
      await cleanup();
    } catch (e) {
      if (failure) log.warn('run.cleanup_failed', { step: what, error: (e as Error).message, account: folder.account, date: folder.date });
      else failure = stageFailure(current, e);
    }
  }
  if (failure instanceof StoppedError) {
    log.warn('run.stopped', { account: folder.account, date: folder.date, task: current, workersStopped: session !== null, stateSaved });
  }
  if (failure) throw failure;
  summary.totalMs = Date.now() - started;
  try {
    await writeJsonDurably(files(folder).summary, summaryJson(summary));
  } catch (e) {
    throw stageFailure(current, e);
  }
  return summary;
}

/**
 * Removes a run folder that an input error left with nothing built, except quarantine.parquet when the
 * error was about rejected rows (its message names the file): then that file alone stays.
 */
async function removeRunFolder(dir: string): Promise<void> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  if (!entries.includes('quarantine.parquet')) {
    await rm(dir, { recursive: true, force: true });
    return;
  }
  for (const e of entries) if (e !== 'quarantine.parquet') await rm(path.join(dir, e), { recursive: true, force: true });
}

/** The exit-code class of each task, for failures of the machine (disk full, permissions) met while it ran. */
const TASK_ERRORS: Record<PipelineTask, new (message: string, options?: { cause?: unknown }) => NextbuyError> = {
  preprocess: InputError,
  train: ModelError,
  score: ModelError,
  evaluate: ModelError,
  publish: PublishError,
};

/** A file-system failure becomes the task's error naming the task, the path and the cause; anything else passes through. */
function stageFailure(task: PipelineTask, e: unknown): unknown {
  if (e instanceof NextbuyError || !isSystemIoError(e)) return e;
  return new TASK_ERRORS[task](
    `${task}: ${describeIoError(e)}. Free space or fix permissions there and rerun the same command: finished work is kept.`,
    { cause: e },
  );
}

/**
 * Temporary files of killed writers (`.tmp-*`) under the run folder and the date's partitions, audiences
 * and exports: this run holds the date's lock, so no live writer owns them.
 */
async function removeLeftovers(folder: RunFolder): Promise<void> {
  const dirs = [
    folder.dir,
    dateDir(folder.outDir, folder.account, folder.date),
    audienceDir(folder.outDir, folder.account, folder.date),
    path.join(folder.outDir, 'exports', `account=${folder.account}`, `date=${folder.date}`),
  ];
  let removed = 0;
  for (const dir of dirs) removed += await removeTempFiles(dir);
  if (removed > 0) log.info('run.temp_files_removed', { account: folder.account, date: folder.date, files: removed });
}

/** Starts a fresh run folder when the job or its input changed since the last run of this date. */
async function openState(o: RunOptions, folder: RunFolder, listing: InputListing): Promise<RunState> {
  // Relative names, sizes and modification times: a rewritten file of the same size is caught too.
  const inputFingerprint = inputChangeFingerprint(listing);
  const existing = await readState(folder);
  if (existing && existing.runId === folder.runId && existing.inputFingerprint === inputFingerprint) return existing;
  if (existing && o.tasks[0] !== 'preprocess') {
    throw new InputError(
      `the run folder ${folder.dir} was built from ${existing.runId === folder.runId ? 'input files rewritten since' : 'another job configuration or other input files'}: ` +
        `run 'nextbuy preprocess --account ${folder.account} --date ${folder.date}' (or 'nextbuy run') to rebuild it`,
    );
  }
  if (existing) await rm(folder.dir, { recursive: true, force: true });
  await makeDir(folder.dir);
  const state: RunState = { runId: folder.runId, account: folder.account, date: folder.date, inputFingerprint, done: {}, timings: {} };
  await writeState(folder, state);
  return state;
}

/** This run's models, or the account's latest trained ones (a scoring-only night). */
export async function modelsFor(folder: RunFolder): Promise<ModelsFile> {
  const own = await requireJson<ModelsFile>(files(folder).models, 'train', folder).catch(() => null);
  if (own) return own;
  return requireJson<ModelsFile>(files(folder).latestModels, 'train', folder);
}

async function scoreStage(
  folder: RunFolder,
  pre: PreprocessResult,
  models: ModelsFile,
  session: WorkerSession,
  onProgress?: (done: number, total: number) => void,
  stop?: AbortSignal,
): Promise<void> {
  if (!pre.score) throw new InputError(`preprocess for ${folder.date} built no score set: rerun 'nextbuy preprocess'`);
  for (const m of models.models) session.loadModel(m.modelVersion, await loadArtifactFiles(m.dir));
  await makeDir(folder.scoresDir);
  const done = new Set((await readdir(folder.scoresDir)).filter((f) => f.endsWith('.arrow')).map((f) => f.slice(0, -'.arrow'.length)));
  const pending = pre.score.shards.filter((s) => !done.has(s.id));
  if (pending.length === 0) return;
  await session.scoreShards({
    shards: pending,
    modelVersions: models.models.map((m) => m.modelVersion),
    products: models.products,
    onResult: (shardId, arrow) => writeFileDurably(path.join(folder.scoresDir, `${shardId}.arrow`), arrow),
    onProgress,
    stop,
  });
}
