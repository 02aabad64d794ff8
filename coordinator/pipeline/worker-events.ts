/**
 * What happened to the run's workers, said by the coordinator: lost workers (a heartbeat timeout, or
 * taken out of the pool), shards leased again after a failed attempt, and workers that joined after the
 * run started. Each is a log line, a count in the run summary and a Prometheus counter.
 */
import type { Logger } from '../../core/log.js';
import { metrics } from '../../core/metrics.js';
import type { PoolEvent, WorkerPool } from '../cluster/index.js';
import type { ScheduleEvent } from '../schedule/index.js';

export interface WorkerEventCounts {
  /** Workers that left the pool other than by a clean drain or the end of the run. */
  lost: number;
  /** Of those, the ones presumed dead because heartbeats went unanswered. */
  heartbeatTimeouts: number;
  /** Shard attempts that failed and were leased again. */
  reLeases: number;
  /** Workers that joined once the run had started (replacements included). */
  lateJoins: number;
}

export interface WorkerWatch {
  readonly counts: WorkerEventCounts;
  /** Feed the scheduler's events (re-leases). */
  onSchedule(e: ScheduleEvent): void;
  /** Stops listening (before the run's own shutdown, whose departures are expected). */
  stop(): void;
}

/**
 * The runtimes workers reported at Hello, workers with the same list together:
 * `onnxruntime-cpu, tfjs-wasm (local-0, local-1)`; `; ` between groups.
 */
export function describeRuntimes(workers: readonly { name: string; runtimes: readonly string[] }[]): string {
  const groups = new Map<string, string[]>();
  for (const w of workers) {
    const key = w.runtimes.length > 0 ? w.runtimes.join(', ') : 'none reported';
    groups.set(key, [...(groups.get(key) ?? []), w.name]);
  }
  return [...groups].map(([runtimes, names]) => `${runtimes} (${names.join(', ')})`).join('; ');
}

export function watchWorkers(pool: WorkerPool, logger: Logger): WorkerWatch {
  const counts: WorkerEventCounts = { lost: 0, heartbeatTimeouts: 0, reLeases: 0, lateJoins: 0 };
  const onPool = (e: PoolEvent) => {
    if (e.type === 'joined') {
      counts.lateJoins++;
      metrics.workerLateJoins.inc();
      logger.info('worker.joined_late', { worker: e.worker.name, runtimes: e.worker.runtimes.join(', '), ready: pool.ready().length });
    } else if (e.type === 'left' && (e.cause === 'dead' || e.cause === 'removed')) {
      counts.lost++;
      if (e.cause === 'dead') counts.heartbeatTimeouts++;
      metrics.workersLost.inc({ cause: e.cause === 'dead' ? 'heartbeat-timeout' : 'removed' });
      logger.warn('worker.lost', { worker: e.worker.name, cause: e.cause === 'dead' ? 'heartbeat timeout' : 'removed', reason: e.reason, ready: pool.ready().length });
    } else if (e.type === 'left' && e.cause === 'drained') {
      logger.info('worker.drained', { worker: e.worker.name, ready: pool.ready().length });
    }
  };
  const unsubscribe = pool.on(onPool);
  return {
    counts,
    onSchedule(e) {
      if (e.type === 'attempt-failed') {
        counts.reLeases++;
        logger.warn('shard.re_leased', { shard: e.shardId, attempt: e.attempt, worker: e.worker, error: e.error, retryInMs: e.retryInMs, counted: e.counted });
      } else if (e.type === 'worker-unusable') {
        logger.warn('worker.unusable', { worker: e.worker, error: e.error });
      }
    },
    stop: unsubscribe,
  };
}
