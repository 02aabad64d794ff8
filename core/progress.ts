/**
 * Progress of a long stage (rows read, shards scored, epochs trained): a bar with done/total, rate and
 * ETA on a terminal (stderr), and a `progress` log line every so often anywhere else, so pod logs show
 * that a night is moving without a line per shard.
 *
 *   const p = startProgress({ stage: 'score', unit: 'shards', total: shards.length });
 *   try { for (...) { ...; p.tick(); } p.finish(); } catch (e) { p.fail(e); throw e; }
 *
 * No timers: drawing happens inside tick()/update(), throttled, so nothing outlives the stage.
 */
import { formatDuration, requireDuration } from './duration.js';
import { log as defaultLogger, setStatusLine, type LogStream, type Logger } from './log.js';

/** The rate is measured over this trailing window, so it follows a stage that speeds up or slows down. */
const RATE_WINDOW_MS = 10_000;
const SAMPLE_EVERY_MS = 200;

export interface ProgressOptions {
  /** Shown first, e.g. 'score'. */
  stage: string;
  /** What is counted, plural: 'rows', 'shards', 'epochs'. */
  unit: string;
  /** @default unknown (no bar, no percentage, no ETA) until setTotal() */
  total?: number;
  /** @default process.stderr */
  stream?: LogStream & { columns?: number };
  /** Draw a bar (true) or write periodic log lines (false). @default stream.isTTY */
  tty?: boolean;
  /** Terminal: redraw at most this often. @default '100ms' */
  redrawEvery?: string | number;
  /** Not a terminal: one log line at most this often (and one at the end). @default '10s' */
  logEvery?: string | number;
  /** Receives the non-terminal lines. @default the process logger (core/log.ts) */
  logger?: Logger;
  /** @default Date.now */
  now?: () => number;
}

export interface ProgressSnapshot {
  stage: string;
  unit: string;
  done: number;
  total: number | null;
  elapsedMs: number;
  /** Units per second over the trailing window; 0 before there is anything to measure. */
  ratePerSecond: number;
  /** null when the total is unknown or the rate is still 0. */
  etaMs: number | null;
}

export interface Progress {
  /** Adds `n` (default 1) to done. */
  tick(n?: number): void;
  /** Sets done (e.g. from a count reported by a worker). */
  update(done: number): void;
  setTotal(total: number): void;
  snapshot(): ProgressSnapshot;
  /**
   * Draws the final state and releases the terminal line; safe to call twice. Finished short of a known
   * total (a model that stopped early), the line says so — `stopped early at epoch 3 of 6` — and shows no ETA.
   */
  finish(): void;
  /** Like finish(), saying the stage stopped early. */
  fail(reason?: unknown): void;
}

export function startProgress(o: ProgressOptions): Progress {
  return new StageProgress(o);
}

class StageProgress implements Progress {
  private readonly stream: LogStream & { columns?: number };
  private readonly tty: boolean;
  private readonly redrawMs: number;
  private readonly logEveryMs: number;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly startedAt: number;
  private readonly samples: { t: number; done: number }[] = [];
  private done = 0;
  private total: number | null;
  private lastDrawAt = -Infinity;
  private lastLogAt: number;
  private ended = false;

  constructor(private readonly o: ProgressOptions) {
    this.stream = o.stream ?? process.stderr;
    this.tty = o.tty ?? this.stream.isTTY === true;
    this.redrawMs = requireDuration(o.redrawEvery ?? '100ms', 'progress redrawEvery');
    this.logEveryMs = requireDuration(o.logEvery ?? '10s', 'progress logEvery');
    this.logger = o.logger ?? defaultLogger;
    this.now = o.now ?? Date.now;
    this.startedAt = this.now();
    this.lastLogAt = this.startedAt;
    this.total = o.total ?? null;
    this.samples.push({ t: this.startedAt, done: 0 });
    if (this.tty) this.draw(this.startedAt);
  }

  tick(n = 1): void {
    this.update(this.done + n);
  }

  update(done: number): void {
    if (this.ended) return;
    this.done = done;
    const t = this.now();
    // One sample per SAMPLE_EVERY_MS bounds memory when tick() is called per row.
    if (t - this.samples[this.samples.length - 1]!.t >= SAMPLE_EVERY_MS) this.samples.push({ t, done });
    while (this.samples.length > 2 && this.samples[1]!.t <= t - RATE_WINDOW_MS) this.samples.shift();
    if (this.tty) {
      if (t - this.lastDrawAt >= this.redrawMs) this.draw(t);
    } else if (t - this.lastLogAt >= this.logEveryMs) {
      this.lastLogAt = t;
      this.logger.info('progress', snapshotFields(this.snapshotAt(t)));
    }
  }

  setTotal(total: number): void {
    this.total = total;
  }

  snapshot(): ProgressSnapshot {
    return this.snapshotAt(this.now());
  }

  finish(): void {
    this.end('done', undefined);
  }

  fail(reason?: unknown): void {
    this.end('failed', reason);
  }

  private end(outcome: 'done' | 'failed', reason: unknown): void {
    if (this.ended) return;
    this.ended = true;
    const t = this.now();
    const s = { ...this.snapshotAt(t), etaMs: null }; // an ended stage has no time left
    const early = outcome === 'done' && s.total !== null && s.done < s.total;
    if (this.tty) {
      setStatusLine(this.stream, null);
      const note = outcome === 'failed' ? '  (stopped)' : early ? ` · ${stoppedEarly(s)}` : '';
      this.stream.write(`${formatProgressLine(s, this.stream.columns && this.stream.columns - note.length)}${note}\n`);
      return;
    }
    const fields = { ...snapshotFields(s), outcome: early ? 'stopped_early' : outcome, ...(reason instanceof Error ? { error: reason } : {}) };
    if (outcome === 'done') this.logger.info('progress.done', early ? { ...fields, note: stoppedEarly(s) } : fields);
    else this.logger.warn('progress.stopped', fields);
  }

  private draw(t: number): void {
    this.lastDrawAt = t;
    setStatusLine(this.stream, formatProgressLine(this.snapshotAt(t), this.stream.columns));
  }

  private snapshotAt(t: number): ProgressSnapshot {
    const first = this.samples[0]!;
    const windowMs = t - first.t;
    const ratePerSecond = windowMs > 0 ? ((this.done - first.done) * 1000) / windowMs : 0;
    const remaining = this.total === null ? null : Math.max(0, this.total - this.done);
    return {
      stage: this.o.stage,
      unit: this.o.unit,
      done: this.done,
      total: this.total,
      elapsedMs: t - this.startedAt,
      ratePerSecond,
      etaMs: remaining === null ? null : remaining === 0 ? 0 : ratePerSecond > 0 ? (remaining / ratePerSecond) * 1000 : null,
    };
  }
}

function snapshotFields(s: ProgressSnapshot) {
  return {
    stage: s.stage,
    unit: s.unit,
    done: s.done,
    total: s.total ?? undefined,
    percent: s.total ? Math.round((s.done / s.total) * 1000) / 10 : undefined,
    rate_per_s: round3(s.ratePerSecond),
    eta_s: s.etaMs === null ? undefined : Math.round(s.etaMs / 1000),
    elapsed_s: Math.round(s.elapsedMs / 100) / 10,
  };
}

/** `stopped early at epoch 3 of 6`: the unit in the singular. */
function stoppedEarly(s: ProgressSnapshot): string {
  return `stopped early at ${s.unit.replace(/s$/, '')} ${compact(s.done)} of ${compact(s.total ?? 0)}`;
}

const BAR_WIDTH = 24;

/** One terminal line: `score [████████░░░░] 42% 27/64 shards · 3.1 shards/s · ETA 12.0 s`. */
export function formatProgressLine(s: ProgressSnapshot, columns?: number): string {
  const parts = [s.stage];
  if (s.total !== null && s.total > 0) {
    const share = Math.min(1, s.done / s.total);
    const filled = Math.round(share * BAR_WIDTH);
    parts.push(`[${'█'.repeat(filled)}${'░'.repeat(BAR_WIDTH - filled)}]`, `${Math.floor(share * 100)}%`);
    parts.push(`${compact(s.done)}/${compact(s.total)} ${s.unit}`);
  } else {
    parts.push(`${compact(s.done)} ${s.unit}`);
  }
  let line = `${parts.join(' ')} · ${compact(s.ratePerSecond)} ${s.unit}/s`;
  if (s.etaMs !== null && s.done < (s.total ?? 0)) line += ` · ETA ${formatDuration(s.etaMs)}`;
  else line += ` · ${formatDuration(s.elapsedMs)}`;
  return columns && columns > 10 && line.length > columns - 1 ? line.slice(0, columns - 1) : line;
}

/** 950, 12.3k, 4.56M: counts and rates short enough for one terminal line. */
export function compact(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  if (Number.isInteger(n)) return String(n);
  return a >= 100 ? n.toFixed(0) : a >= 10 ? n.toFixed(1) : n.toFixed(2);
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}
