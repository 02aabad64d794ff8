/**
 * Point-in-time windows, all half-open [from, to) in epoch milliseconds (UTC days).
 *
 *   score set, as-of D:         features [D − L, D)        labels [D, D + H)
 *   train set, as-of T = D − H: features [T − L, T)        labels [T, T + H) = [D − H, D)
 *
 * An event at or after a set's as-of time can only ever reach that set's labels, never its features.
 */
import { DAY_MS, type Job } from '../../jobs/job.js';
import { UsageError } from '../../core/errors.js';

export type SetName = 'train' | 'score';

export interface SetWindow {
  name: SetName;
  asOf: string;
  asOfMs: number;
  featureFromMs: number;
  labelToMs: number;
}

export interface WindowPlan {
  scoreDate: string;
  train: SetWindow;
  /** The training snapshots, latest first: train, then as of T − H, T − 2H, … (job.training.snapshots in all). */
  trainSnapshots: SetWindow[];
  score: SetWindow;
  /** The sets to build, in this order. */
  sets: SetWindow[];
  /** Vocabularies are counted on the training window's feature events. */
  vocabFromMs: number;
  vocabToMs: number;
  /** Events in [fromMs, toMs) feed some feature, label or vocabulary; valid rows outside it are `outside_window`. */
  fromMs: number;
  toMs: number;
  /** Top categories count purchasing customers in [train.featureFromMs, productsToMs = D): the training window. */
  productsToMs: number;
}

const DATE_PATTERN = /^(\d{4})-(\d{2})-(\d{2})$/;

/** 'YYYY-MM-DD' → epoch ms at 00:00 UTC, or undefined when not a real calendar date. */
export function parseDay(value: string): number | undefined {
  const m = DATE_PATTERN.exec(value);
  if (!m) return undefined;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return formatDay(ms) === value ? ms : undefined;
}

export function formatDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export function planWindows(job: Job, scoreDate: string, sets: SetName[], buildVocabulary: boolean): WindowPlan {
  const d = parseDay(scoreDate);
  if (d === undefined) throw new UsageError(`score date must be a calendar day YYYY-MM-DD, got "${scoreDate}"`);
  const h = job.label.horizonDays * DAY_MS;
  const l = job.sequence.lookbackDays * DAY_MS;
  const window = (name: SetName, asOfMs: number): SetWindow => ({
    name,
    asOf: formatDay(asOfMs),
    asOfMs,
    featureFromMs: asOfMs - l,
    labelToMs: asOfMs + h,
  });
  const train = window('train', d - h);
  const trainSnapshots = Array.from({ length: job.training.snapshots }, (_, k) => window('train', d - (k + 1) * h));
  const score = window('score', d);
  const chosen = (['train', 'score'] as const).filter((s) => sets.includes(s)).map((s) => (s === 'train' ? train : score));
  const needed = [...chosen, ...(sets.includes('train') ? trainSnapshots : [])];
  if (buildVocabulary) needed.push({ ...train, labelToMs: train.asOfMs });
  return {
    scoreDate,
    train,
    trainSnapshots,
    score,
    sets: chosen,
    vocabFromMs: train.featureFromMs,
    vocabToMs: train.asOfMs,
    fromMs: Math.min(...needed.map((w) => w.featureFromMs)),
    toMs: Math.max(...needed.map((w) => w.labelToMs)),
    productsToMs: d,
  };
}
