/**
 * What one run leaves for Prometheus after its process is gone (a CronJob's pod is, before the next
 * scrape): the night's figures as gauges in a registry of their own, built from the run summary at the
 * end of every run, successful or failed, then PUT to a Pushgateway under { job, account, date } (a rerun
 * replaces its date's group, so no stale series stay) and/or written atomically for node-exporter's
 * textfile collector. Every series carries account, date and run labels. Neither ever fails the night:
 * a problem is a warning in the log.
 *
 * nextbuy_last_success_timestamp_seconds only moves when a run that publishes succeeds. Since a push
 * replaces the date's group, any other run of the date (a failed rerun, a lone `nextbuy evaluate`) carries
 * the time its predictions were committed, for as long as that commit stands; with none, the series is
 * absent. Alert on the newest success over the account's dates (README "Metrics").
 */
import { readFile } from 'node:fs/promises';
import { Gauge, Pushgateway, Registry } from 'prom-client';
import { commitRename, writeTempFile } from '../../core/durable-fs.js';
import { NextbuyError } from '../../core/errors.js';
import { log } from '../../core/log.js';
import type { ObservabilitySettings } from '../../jobs/job.js';
import { committedPartitions, dateCommitPath, dateCommitStatus, type DateCommitRecord } from '../publish/index.js';
import type { PipelineTask, RunSummary } from './index.js';

/** A Pushgateway that does not answer within this long gets a warning, and the run ends anyway. */
export const PUSH_TIMEOUT_MS = 10_000;
/** node-exporter usually runs as another user: the file holds no customer data, only the night's figures. */
const TEXTFILE_MODES = { file: 0o644, dir: 0o755 };

export interface NightRecord {
  /** The job's output.dir: where the date's published predictions are. */
  outDir: string;
  account: string;
  date: string;
  /** Null when the run failed before its run folder was known (e.g. an unreadable input listing). */
  runId: string | null;
  /** The tasks asked for (`run` is all of them). */
  tasks: PipelineTask[];
  /** The task running when the run ended: the last one on success. */
  stage: PipelineTask;
  /** What the run got to (partial when it failed); null when it failed before it had one. */
  summary: RunSummary | null;
  /** Null on success. */
  error: unknown;
  startedAtMs: number;
  endedAtMs: number;
}

export type NightOutcome = 'success' | 'failed' | 'stopped';

export function outcomeOf(error: unknown): { outcome: NightOutcome; exitCode: number } {
  if (error === null || error === undefined) return { outcome: 'success', exitCode: 0 };
  if (error instanceof NextbuyError) return { outcome: error.code === 'STOPPED' ? 'stopped' : 'failed', exitCode: error.exitCode };
  return { outcome: 'failed', exitCode: 1 };
}

/**
 * The night's metrics in a fresh registry: the exposition pushed and written. `lastSuccessAtMs`: see
 * lastSuccessAtMs(); null leaves the series out.
 */
export function nightRegistry(r: NightRecord, lastSuccessAtMs: number | null): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ account: r.account, date: r.date, run: r.runId ?? '' });
  const registers = [registry];
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) => new Gauge<L>({ name, help, labelNames, registers });
  const { outcome, exitCode } = outcomeOf(r.error);

  gauge('nextbuy_last_run_timestamp_seconds', 'When the last run of this account and date ended, successful or not.').set(r.endedAtMs / 1000);
  if (lastSuccessAtMs !== null) {
    gauge('nextbuy_last_success_timestamp_seconds', "When a run last published this account and date's predictions (while they stay committed).").set(lastSuccessAtMs / 1000);
  }
  gauge('nextbuy_last_run_exit_code', 'The exit code of the last run (0 success; README "The command line" lists the others).').set(exitCode);
  gauge('nextbuy_last_run_outcome', 'The last run: 1 for its outcome (success, failed, stopped) and the stage it ended in.', ['outcome', 'stage'])
    .set({ outcome, stage: r.stage }, 1);
  gauge('nextbuy_run_duration_seconds', 'Wall time of the last run.').set((r.endedAtMs - r.startedAtMs) / 1000);

  const s = r.summary;
  if (!s) return registry;
  const timings = Object.entries(s.timings).filter((t): t is [string, number] => typeof t[1] === 'number');
  if (timings.length > 0) {
    const stages = gauge('nextbuy_run_stage_duration_seconds', 'Wall time of each stage the last run ran (a resumed run: the stages it ran itself).', ['stage']);
    for (const [stage, ms] of timings) stages.set({ stage }, ms / 1000);
  }

  if (s.preprocess) {
    const st = s.preprocess.stats;
    gauge('nextbuy_input_rows_read', 'Input rows read (malformed CSV lines included).').set(st.rowsRead);
    gauge('nextbuy_input_rows_accepted', 'Input rows accepted.').set(st.rowsAccepted);
    const rejected = Object.entries(st.rejected) as [string, number][];
    gauge('nextbuy_input_rows_rejected', 'Input rows rejected (written to quarantine.parquet).').set(rejected.reduce((a, [, n]) => a + n, 0));
    const byReason = gauge('nextbuy_input_rows_rejected_by_reason', 'Input rows rejected, by rule.', ['reason']);
    for (const [reason, n] of rejected) byReason.set({ reason }, n);
    const customers = gauge('nextbuy_customers', 'Customers in the training set and in the scored set.', ['set']);
    for (const set of [s.preprocess.train, s.preprocess.score]) if (set) customers.set({ set: set.name }, set.customers);
  }
  if (s.evaluation) {
    const auc = gauge('nextbuy_product_auc', "The published scores' AUC per product, on the evaluation window (or the validation customers).", ['product']);
    const positives = gauge('nextbuy_product_positives', 'Buyers per product among the evaluated customers.', ['product']);
    const customers = gauge('nextbuy_product_customers', 'Evaluated customers per product.', ['product']);
    for (const p of s.evaluation.products) {
      const value = p.published?.auc ?? p.ensemble.auc;
      // No buyers (or no non-buyers): the AUC is undefined, and a missing series says so better than NaN.
      if (value !== null && Number.isFinite(value)) auc.set({ product: p.product }, value);
      positives.set({ product: p.product }, p.positives);
      customers.set({ product: p.product }, p.n);
    }
  }
  if (s.publish) {
    const predictions = gauge('nextbuy_predictions', 'Predictions published per product.', ['product']);
    for (const p of s.publish.partitions) predictions.set({ product: p.product }, p.rows);
  }
  if (s.workers) {
    gauge('nextbuy_run_workers_lost', 'Workers lost during the run (heartbeat timeouts and removals).').set(s.workers.lost);
    gauge('nextbuy_run_shards_re_leased', 'Shard attempts that failed and were leased again.').set(s.workers.reLeases);
  }
  return registry;
}

/** Pushes and/or writes the night's metrics as the job's observability settings say; never throws. */
export async function exportNightMetrics(settings: ObservabilitySettings | undefined, r: NightRecord): Promise<void> {
  if (!settings || (!settings.pushgateway && !settings.textfile)) return;
  const registry = nightRegistry(r, await lastSuccessAtMs(r));
  const where = { account: r.account, date: r.date };
  if (settings.pushgateway) {
    const { url, job } = settings.pushgateway;
    try {
      await new Pushgateway(url, { timeout: PUSH_TIMEOUT_MS }, registry).push({ jobName: job, groupings: { account: r.account, date: r.date } });
      log.info('metrics.pushed', { ...where, pushgateway: redacted(url), job });
    } catch (e) {
      log.warn('metrics.push_failed', { ...where, pushgateway: redacted(url), error: (e as Error).message, hint: 'the night is not affected; check observability.pushgateway.url' });
    }
  }
  if (settings.textfile) {
    try {
      // node-exporter reads every *.prom file of the folder at each scrape: the temporary file's name does
      // not end in .prom, and the rename shows the whole new file at once.
      const tmp = await writeTempFile(`${settings.textfile}.partial`, await registry.metrics(), TEXTFILE_MODES);
      await commitRename(tmp, settings.textfile);
      log.info('metrics.written', { ...where, file: settings.textfile });
    } catch (e) {
      log.warn('metrics.textfile_failed', { ...where, file: settings.textfile, error: (e as Error).message, hint: 'the night is not affected; check observability.textfile' });
    }
  }
}

/**
 * Now for a run that published and succeeded; otherwise when the date's committed predictions were
 * written (the newest partition manifest's createdAt), while the date's commit record stands whole;
 * null when the date is not published.
 */
export async function lastSuccessAtMs(r: NightRecord): Promise<number | null> {
  if (outcomeOf(r.error).outcome === 'success' && r.tasks.includes('publish')) return r.endedAtMs;
  try {
    const record = JSON.parse(await readFile(dateCommitPath(r.outDir, r.account, r.date), 'utf8')) as DateCommitRecord;
    if (!(await dateCommitStatus(r.outDir, r.account, r.date, record.runId)).committed) return null;
    const times = (await committedPartitions(r.outDir, r.account, r.date, { verify: false })).map((p) => Date.parse(p.manifest.createdAt));
    const newest = Math.max(...times.filter(Number.isFinite));
    return Number.isFinite(newest) ? newest : null;
  } catch {
    return null; // no record (never published, or a publish that failed half-way) or an unreadable one: not published
  }
}

/** The URL without credentials, for the log. */
function redacted(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  return u.toString();
}
