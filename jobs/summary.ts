/** What a run prints at the end (and while it goes): short, with the figures a user checks first. */
import path from 'node:path';
import { formatDuration } from '../core/duration.js';
import type { RunSummary } from '../coordinator/pipeline/index.js';
import type { Logger } from '../core/log.js';
import { startProgress, type Progress } from '../core/progress.js';

const n = (x: number) => x.toLocaleString('en-US');
const f = (x: number | null | undefined, digits = 3) => (x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(digits));
const aucWithCi = (a: { auc: number | null; lower: number | null; upper: number | null }) =>
  a.lower === null || a.upper === null ? f(a.auc) : `${f(a.auc)} (${f(a.lower)}..${f(a.upper)})`;
const rel = (p: string) => path.relative(process.cwd(), p) || '.';

export function formatSummary(s: RunSummary): string {
  const out: string[] = [];
  out.push(`nextbuy · account ${s.account} · date ${s.date} · run ${s.runId} · tasks ${s.tasks.join(', ')}`);
  const pre = s.preprocess;
  if (pre) {
    const st = pre.stats;
    const rejectedTotal = Object.values(st.rejected).reduce((a, b) => a + b, 0);
    const reasons = Object.entries(st.rejected).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${n(v)}`).join(', ');
    out.push(`input       ${n(st.rowsRead)} rows read from ${st.inputFiles} file(s) · ${n(st.rowsAccepted)} accepted · ${n(rejectedTotal)} rejected${reasons ? ` (${reasons})` : ''} · ${n(st.outsideWindow)} outside the window`);
    if (st.quarantineFile) out.push(`            quarantine: ${rel(st.quarantineFile)}`);
    if (st.freshness?.allowedStale) out.push(`            stale input built anyway (--allow-stale): ${st.freshness.stale}`);
    for (const set of [pre.train, pre.score]) {
      if (!set) continue;
      const positives = Object.entries(set.positives).map(([p, v]) => `${p} ${n(v)}`).join(', ');
      out.push(`${set.name.padEnd(12)}as of ${set.asOf}: ${n(set.customers)} customers (${n(set.noHistory)} without recent events) in ${set.shards.length} shards · positives ${set.labelled ? positives : 'unknown yet (label window not over)'}`);
    }
    out.push(`products    ${pre.products.map((p) => p.name).join(', ')}`);
  }
  if (s.models) {
    for (const m of s.models.models) {
      out.push(`model       ${m.name.padEnd(18)} ${m.modelVersion} · best epoch ${m.bestEpoch} · validation AUC ${f(m.validationAuc)}`);
    }
  }
  const ev = s.evaluation;
  if (ev) {
    out.push(`evaluation  ${ev.windowLabel}`);
    out.push(`  ${'product'.padEnd(12)} ${'customers'.padStart(9)} ${'positives'.padStart(9)}  ${'Brier'.padStart(5)}  ${'lift@5%'.padStart(7)}  ${'lift@20%'.padStart(8)}   AUC (95 % CI): published · baselines`);
    for (const p of ev.products) {
      const e = p.ensemble;
      const aucs = [p.published, ...p.baselines].filter((a) => a !== null).map((a) => `${a.name} ${aucWithCi(a)}`).join(' · ');
      out.push(`  ${p.product.padEnd(12)} ${n(p.n).padStart(9)} ${n(p.positives).padStart(9)}  ${f(e.brier)}  ${f(e.lift5, 2).padStart(7)}  ${f(e.lift20, 2).padStart(8)}   ${aucs}`);
      out.push(`  ${''.padEnd(12)} verdict: ${p.verdict.text}`);
      if (p.warning) out.push(`  ${''.padEnd(12)} warning: ${p.warning}`);
    }
    out.push(`            report: ${rel(ev.reportHtml)} (and report.json)`);
  }
  if (s.publish) {
    const rows = s.publish.partitions.reduce((a, p) => a + p.rows, 0);
    out.push(`published   ${s.publish.partitions.length} partitions, ${n(rows)} predictions: ${rel(s.publish.predictionsDir)}`);
    out.push(`            audiences: ${rel(s.publish.audiencesDir)}`);
    for (const c of s.publish.champions ?? []) {
      out.push(`champion    ${c.product.padEnd(12)} ${c.candidate}${c.source === 'previous' ? ' (last published model kept)' : ''} · calibration ${c.calibration} · ${c.reason}`);
    }
    for (const w of s.publish.warnings ?? []) out.push(`warning     ${w}`);
  }
  const w = s.workers;
  if (w && (w.lost || w.reLeases || w.lateJoins)) {
    out.push(`workers     ${n(w.lost)} lost (${n(w.heartbeatTimeouts)} by heartbeat timeout) · ${n(w.reLeases)} shard attempts leased again · ${n(w.lateJoins)} joined late`);
  }
  const stages = Object.entries(s.timings).filter(([, ms]) => ms !== undefined) as [string, number][];
  const total = s.totalMs;
  out.push(
    `time        total ${formatDuration(total)} · ${stages.map(([k, ms]) => `${k} ${formatDuration(ms)} (${Math.round((100 * ms) / Math.max(total, 1))}%)`).join(' · ')}`,
  );
  return `${out.join('\n')}\n`;
}

/**
 * What the run shows while it goes, on stderr: stage lines through the logger (human lines on a terminal,
 * JSON lines otherwise), and progress bars with rate and ETA for the long stages (epochs, shards).
 */
export function stageReporter(logger: Logger, epochsPerModel: number) {
  const bars = new Map<string, Progress>();
  const bar = (key: string, make: () => Progress) => {
    let b = bars.get(key);
    if (!b) bars.set(key, (b = make()));
    return b;
  };
  return {
    onStage(stage: string, event: 'start' | 'end' | 'skipped', ms?: number) {
      if (event === 'skipped') logger.info('stage.skipped', { stage, why: 'done by an earlier run of this night with the same job and input' });
      else if (event === 'start') logger.info('stage.start', { stage });
      else {
        for (const [key, b] of bars) if (key.startsWith(`${stage}:`)) b.finish();
        logger.info('stage.end', { stage, ms });
      }
    },
    onEpoch(model: string, epoch: number, auc: number) {
      const key = `train:${model}`;
      // Models train one after another: a model's first epoch ends the bar of the one before (at its last
      // epoch, or saying it stopped early) instead of leaving it at its last percentage until the stage ends.
      if (!bars.has(key)) for (const [k, b] of bars) if (k.startsWith('train:')) b.finish();
      const b = bar(key, () => startProgress({ stage: `train ${model}`, unit: 'epochs', total: epochsPerModel }));
      b.update(epoch);
      logger.debug('train.epoch', { model, epoch, validationAuc: Number.isNaN(auc) ? null : Number(auc.toFixed(4)) });
    },
    onScoreProgress(done: number, total: number) {
      bar('score:shards', () => startProgress({ stage: 'score', unit: 'shards', total })).update(done);
    },
  };
}
