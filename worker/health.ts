/**
 * A worker's probes and metrics, on NEXTBUY_METRICS_PORT (the pods set it; k8s default 9470):
 *   /healthz  live: the process answers (restarting it would not help a worker that is loading its engine)
 *   /readyz   ready: the gRPC server runs, the worker is registered with its coordinator (or has none to
 *             register with) and is not draining; 503 with the phase otherwise
 *   /metrics  Prometheus text from core/metrics.ts (shards scored and failed, sequences scored, process)
 * With NEXTBUY_METRICS_PORT unset nothing listens (local workers share one machine and one port space).
 *
 * worker/main.ts creates one WorkerHealth, moves it through its phases and passes every log event to
 * observe(): the counters follow the server's own log events, so the gRPC server needs no hook.
 */
import { metrics, serveMetricsFromEnv, type HealthStatus, type MetricsServer } from '../core/metrics.js';

/** The workers' metrics port in the Kubernetes objects and the worker images. */
export const DEFAULT_WORKER_METRICS_PORT = 9470;

export type WorkerPhase =
  /** Loading the engine (tfjs-node-gpu on a cold node can take minutes). */
  | 'starting'
  /** The gRPC server runs; registering (or re-registering) with the coordinator. */
  | 'registering'
  /** Registered (or standalone with no coordinator): taking shards. */
  | 'ready'
  /** SIGTERM or a drain: takes no new shards. */
  | 'draining';

export class WorkerHealth {
  private phase: WorkerPhase = 'starting';

  set(phase: WorkerPhase): void {
    if (this.phase === 'draining') return; // a drain is final
    this.phase = phase;
  }

  get current(): WorkerPhase {
    return this.phase;
  }

  live(): HealthStatus {
    return { ok: true, detail: this.phase };
  }

  ready(): HealthStatus {
    return { ok: this.phase === 'ready', detail: this.phase };
  }

  /** Counts what the worker's gRPC server logs (worker/server.ts events). */
  observe(event: string, fields: Record<string, unknown> = {}): void {
    switch (event) {
      case 'score-done':
        metrics.shardsDone.inc();
        if (typeof fields.rows === 'number') metrics.sequences.inc(fields.rows);
        break;
      case 'score-failed':
        metrics.shardsFailed.inc();
        break;
      case 'draining':
        this.set('draining');
        break;
    }
  }
}

/** Serves /healthz, /readyz and /metrics on NEXTBUY_METRICS_PORT (all interfaces), or nothing when it is unset. */
export function serveWorkerHealth(health: WorkerHealth, env: NodeJS.ProcessEnv = process.env): Promise<MetricsServer | null> {
  return serveMetricsFromEnv({ host: '0.0.0.0', health: () => health.live(), ready: () => health.ready() }, env);
}
