/**
 * Backfills: one idempotent run per date over a range. Dates whose prediction partitions are already
 * committed by this job configuration are skipped (unless forced), so an interrupted backfill resumes
 * by running the same command again.
 */
import { EXIT_CODES, NextbuyError } from '../core/errors.js';
import { formatDuration } from '../core/duration.js';
import { checkK8sPrerequisites } from '../coordinator/cluster/index.js';
import { runDate, runFolder, type PipelineTask } from '../coordinator/pipeline/index.js';
import { dateCommitStatus, type DateCommitStatus } from '../coordinator/publish/index.js';
import { DAY_MS, type Job } from './job.js';
import { formatDate, parseDateMs } from './job-file.js';
import { withLogContext } from '../core/log.js';

export interface BackfillOptions {
  job: Job;
  from: string;
  to: string;
  tasks: PipelineTask[];
  /** Dates run at once. @default 1 */
  parallel?: number;
  /** Rerun committed dates too. @default false */
  force?: boolean;
  /** Build dates whose input the freshness gate finds stale (see RunOptions.allowStale). @default false */
  allowStale?: boolean;
  env: 'local' | 'k8s';
  workers?: number | null;
  /** A graceful stop: the date in progress stops as `run` does (RunOptions.stop), later dates are not started. @default none */
  stop?: AbortSignal;
  onDate?: (date: string, status: string) => void;
}

export interface BackfillRow {
  date: string;
  status: 'done' | 'skipped' | 'failed';
  detail: string;
  ms: number;
  exitCode: number;
  /** This job configuration's run id for the date, and its run folder (summary.json there when done). */
  runId: string;
  runDir: string;
}

export function datesBetween(from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = parseDateMs(from)!; t <= parseDateMs(to)!; t += DAY_MS) out.push(formatDate(t));
  return out;
}

/**
 * Committed = the date's commit record (written last by publish) names this job configuration's run id
 * and everything it lists (every product's manifest, the audiences, the export) is there as recorded.
 */
export async function isCommitted(job: Job, date: string): Promise<DateCommitStatus> {
  return dateCommitStatus(job.output.dir, job.account, date, runFolder(job, date).runId);
}

export async function backfill(o: BackfillOptions): Promise<BackfillRow[]> {
  // Once, before the first date: without them every date would fail the same way.
  if (o.env === 'k8s') await checkK8sPrerequisites({ job: o.job });
  const dates = datesBetween(o.from, o.to);
  const rows = new Map<string, BackfillRow>();
  const queue = [...dates];
  const publishes = o.tasks.includes('publish');
  const runOne = async (date: string) => {
    const started = Date.now();
    const folder = runFolder(o.job, date);
    // The date's log lines (onDate's included) name its account, date and run, like a run's own.
    return withLogContext({ account: o.job.account, date, run: folder.runId }, () => runFolderDate(date, started, folder));
  };
  const runFolderDate = async (date: string, started: number, folder: ReturnType<typeof runFolder>) => {
    const where = { runId: folder.runId, runDir: folder.dir };
    if (o.stop?.aborted) {
      rows.set(date, { date, status: 'failed', detail: 'not started: the backfill was stopped', ms: 0, exitCode: EXIT_CODES.STOPPED, ...where });
      return;
    }
    let unfinished = '';
    if (publishes && !o.force) {
      const c = await dateCommitStatus(o.job.output.dir, o.job.account, date, folder.runId);
      if (c.committed) {
        rows.set(date, { date, status: 'skipped', detail: `already committed (${c.products.length} products)`, ms: 0, exitCode: 0, ...where });
        o.onDate?.(date, 'skipped: already committed');
        return;
      }
      if (c.reason !== 'never published') unfinished = ` (not wholly committed: ${c.reason})`;
    }
    o.onDate?.(date, `running${unfinished}`);
    try {
      const s = await runDate({ job: o.job, date, tasks: o.tasks, env: o.env, workers: o.workers ?? null, allowStale: o.allowStale, stop: o.stop });
      const detail = s.publish ? `${s.publish.partitions.length} partitions committed` : `${o.tasks.join(', ')} done`;
      rows.set(date, { date, status: 'done', detail, ms: Date.now() - started, exitCode: 0, runId: s.runId, runDir: s.runDir });
      o.onDate?.(date, `done: ${detail}`);
    } catch (e) {
      const exitCode = e instanceof NextbuyError ? e.exitCode : 1;
      rows.set(date, { date, status: 'failed', detail: (e as Error).message.split('\n')[0]!, ms: Date.now() - started, exitCode, ...where });
      o.onDate?.(date, `failed: ${(e as Error).message.split('\n')[0]}`);
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(o.parallel ?? 1, dates.length) }, async () => {
      for (let d = queue.shift(); d; d = queue.shift()) await runOne(d);
    }),
  );
  return dates.map((d) => rows.get(d)!);
}

/** `--json`: one JSON object (a BackfillRow) per date and line, in date order. */
export function backfillJsonLines(rows: BackfillRow[]): string {
  return rows.map((r) => `${JSON.stringify(r)}\n`).join('');
}

export function printBackfillTable(rows: BackfillRow[]): string {
  const lines = ['date        status   time      detail'];
  for (const r of rows) lines.push(`${r.date}  ${r.status.padEnd(7)}  ${(r.ms ? formatDuration(r.ms) : '-').padEnd(8)}  ${r.detail}`);
  const count = (s: BackfillRow['status']) => rows.filter((r) => r.status === s).length;
  lines.push(`${rows.length} dates: ${count('done')} done, ${count('skipped')} skipped (already committed), ${count('failed')} failed`);
  return `${lines.join('\n')}\n`;
}
