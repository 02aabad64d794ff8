/**
 * The freshness gate: a night is not built from a feed that stopped (its latest valid event before D is
 * older than validation.maxStaleness) or that landed only in part (the day before D holds fewer events
 * than validation.minLastDayShare of the mean day of the week before it). Scores from such input look
 * like scores but rank customers on old news, so the run stops with an InputError (exit 4) unless the
 * caller allows stale input (`--allow-stale`), in which case the finding is recorded in the run's stats.
 */
import { InputError } from '../../core/errors.js';
import { DAY_MS, type Job } from '../../jobs/job.js';
import { FRESHNESS_PRIOR_DAYS } from './prepass.js';
import type { ValidationCounts } from './validate.js';
import { formatDay } from './windows.js';

export interface Freshness {
  /** ISO time of the latest valid event before D, or null when there is none. */
  lastEventAt: string | null;
  /** Valid events on the day before D, and the mean day of the FRESHNESS_PRIOR_DAYS days before it. */
  lastDayEvents: number;
  priorDailyMean: number;
  /** Why the input is stale, or null when it is fresh. */
  stale: string | null;
  /** True when the run went on with stale input (--allow-stale). */
  allowedStale: boolean;
}

export function checkFreshness(job: Job, scoreDate: string, scoreDateMs: number, counts: ValidationCounts, allowStale: boolean): Freshness {
  const maxStalenessMs = job.validation.maxStalenessMs;
  const minShare = job.validation.minLastDayShare ?? 0;
  const last = counts.lastBeforeMs;
  const priorDailyMean = counts.priorDaysEvents / FRESHNESS_PRIOR_DAYS;
  const lastEventAt = last === null ? null : new Date(last).toISOString();
  let stale: string | null = null;
  if (maxStalenessMs !== undefined && (last === null || scoreDateMs - last > maxStalenessMs)) {
    stale = last === null
      ? `the input has no valid event before ${scoreDate}`
      : `the input's latest valid event before ${scoreDate} is at ${lastEventAt}, ${formatDays(scoreDateMs - last)} before it: more than validation.maxStaleness (${formatDays(maxStalenessMs)})`;
  } else if (minShare > 0 && priorDailyMean > 0 && counts.lastDayEvents < minShare * priorDailyMean) {
    stale = `the input's last day before ${scoreDate} (${formatDay(scoreDateMs - DAY_MS)}) holds ${counts.lastDayEvents.toLocaleString('en-US')} valid events, ` +
      `fewer than validation.minLastDayShare (${minShare}) of the ${priorDailyMean.toFixed(1)} a day of the ${FRESHNESS_PRIOR_DAYS} days before it; the latest event is at ${lastEventAt}`;
  }
  if (stale && !allowStale) {
    throw new InputError(`${stale}. Nothing was built for ${scoreDate}: check that the feed is complete, pick an earlier --date, or pass --allow-stale to build from this input anyway`);
  }
  return { lastEventAt, lastDayEvents: counts.lastDayEvents, priorDailyMean, stale, allowedStale: stale !== null };
}

function formatDays(ms: number): string {
  const days = ms / DAY_MS;
  return days >= 2 ? `${Math.floor(days)} days` : `${(ms / 3_600_000).toFixed(1)} hours`;
}
