/** Runs a parsed command: loads the job file, runs the task (or the backfill), prints what happened. */
import { UsageError } from '../core/errors.js';
import { log } from '../core/log.js';
import { serveMetricsFromEnv } from '../core/metrics.js';
import { DEFAULT_RETAIN, type Job } from './job.js';
import { applyRetention, formatRetention, PIPELINE, runDate, summaryJson, type PipelineTask } from '../coordinator/pipeline/index.js';
import type { CliArgs } from './args.js';
import { backfill, backfillJsonLines, printBackfillTable } from './backfill.js';
import { loadJob } from './job-file.js';
import { formatSummary, stageReporter } from './summary.js';
import { explainCustomer } from '../coordinator/explain/index.js';
import { formatExplanation } from './explain-text.js';
import { onStopSignals } from './graceful-stop.js';

export async function runCommand(args: CliArgs): Promise<number> {
  const job = await loadJob(args.conf);
  if (job.account !== args.account) {
    throw new UsageError(`--account ${args.account} does not match the job file's account "${job.account}" (${job.file}): pass the job file of that account with --conf`);
  }
  const reporter = stageReporter(log, job.model.epochs);
  // /metrics and /healthz for Kubernetes probes and Prometheus, when NEXTBUY_METRICS_PORT is set.
  const metricsServer = await serveMetricsFromEnv();
  const stop = onStopSignals(log.child({ account: job.account, date: args.date ?? undefined }));
  try {
    return await runTask(args, job, reporter, stop.signal);
  } finally {
    stop.dispose();
    await metricsServer?.close();
  }
}

async function runTask(args: CliArgs, job: Job, reporter: ReturnType<typeof stageReporter>, stop: AbortSignal): Promise<number> {
  if (args.task === 'explain') {
    const explanation = await explainCustomer({ job, date: args.date!, customerId: args.customer!, product: args.product ?? undefined, top: args.top });
    process.stdout.write(args.json ? `${JSON.stringify(explanation, null, 2)}\n` : formatExplanation(explanation));
    return 0;
  }
  if (args.task === 'gc') return gc(args, job);
  if (args.task === 'backfill') {
    const rows = await backfill({
      job,
      from: args.from!,
      to: args.to!,
      tasks: tasksOf(args.backfillTask),
      parallel: args.parallel,
      force: args.force,
      allowStale: args.allowStale,
      env: args.env,
      workers: args.workers,
      stop,
      onDate: (_date, status) => log.info('backfill.date', { status }),
    });
    process.stdout.write(args.json ? backfillJsonLines(rows) : printBackfillTable(rows));
    return rows.reduce((code, r) => Math.max(code, r.exitCode), 0);
  }
  const summary = await runDate({
    job,
    date: args.date!,
    tasks: tasksOf(args.task),
    env: args.env,
    workers: args.workers,
    onStage: reporter.onStage,
    onEpoch: reporter.onEpoch,
    onScoreProgress: reporter.onScoreProgress,
    allowStale: args.allowStale,
    stop,
  });
  process.stdout.write(args.json ? `${JSON.stringify(summaryJson(summary), null, 2)}\n` : formatSummary(summary));
  return 0;
}

async function gc(args: CliArgs, job: Job): Promise<number> {
  const retain = job.output.retain ?? DEFAULT_RETAIN;
  const runsDays = args.olderThanDays ?? retain.runsDays;
  const exportsDays = args.olderThanDays ?? retain.exportsDays;
  if (runsDays === null && exportsDays === null) {
    throw new UsageError(`nothing to remove: pass --older-than N (e.g. 30d) or set output.retain in ${job.file}`);
  }
  const result = await applyRetention({ outDir: job.output.dir, account: job.account, runsDays, exportsDays, today: args.date!, dryRun: args.dryRun });
  process.stdout.write(args.json ? `${JSON.stringify(result, null, 2)}\n` : formatRetention(result));
  return 0;
}

function tasksOf(task: string): PipelineTask[] {
  return task === 'run' ? PIPELINE : [task as PipelineTask];
}
