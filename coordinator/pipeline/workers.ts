/**
 * The workers of one run, as the pipeline needs them: training participants, model loading, and
 * shard scoring. Started once per run and shared by train and score.
 */
import type { Job } from '../../jobs/job.js';
import { log } from '../../core/log.js';
import { metrics } from '../../core/metrics.js';
import { describeRuntimes, watchWorkers, type WorkerEventCounts } from './worker-events.js';
import {
  clusterOptionsFromJob,
  compileK8sBackendOptions,
  createK8sBackend,
  loadK8sBackendOptions,
  localOrStaticBackend,
  startCluster,
  type ClusterBackend,
} from '../cluster/index.js';
import { runShards, scheduleOptionsFromJob, type ShardRunSummary } from '../schedule/index.js';
import type { TrainParticipant } from '../train/index.js';

export interface WorkerSessionOptions {
  job: Job;
  env: 'local' | 'k8s';
  runId: string;
  /** The date the run scores, for the workers' log lines. @default none */
  date?: string;
  /** Override job.cluster.workers. */
  workers: number | null;
}

export interface ScoreShardsOptions {
  shards: { id: string; file: string }[];
  modelVersions: string[];
  products: string[];
  /** Called once per shard with the accepted attempt's results as one Arrow IPC stream. */
  onResult: (shardId: string, arrow: Uint8Array) => Promise<void>;
  /** Called as shards are accepted: (done, total). */
  onProgress?: (done: number, total: number) => void;
  /** A graceful stop: no more leases, in-flight shards get a grace period (ScheduleOptions.stopSignal). @default none */
  stop?: AbortSignal;
}

export interface WorkerSession {
  participants(): TrainParticipant[];
  /** Registers a model for scoring; every worker (late joiners too) loads it before its first shard. */
  loadModel(modelVersion: string, files: Map<string, Uint8Array>): void;
  scoreShards(o: ScoreShardsOptions): Promise<ShardRunSummary>;
  /** What happened to workers so far: losses, heartbeat timeouts, re-leases, late joins. */
  workerEvents(): WorkerEventCounts;
  close(): Promise<void>;
}

/** How long a Kubernetes run waits for pods beyond their start deadline before giving up. */
const K8S_REGISTRATION_SLACK_MS = 60_000;

export async function startWorkers(o: WorkerSessionOptions): Promise<WorkerSession> {
  const job = o.job;
  let backend: ClusterBackend;
  let k8s: { startMs: number; registrationPort: number } | null = null;
  if (o.env === 'k8s') {
    const options = await loadK8sBackendOptions();
    const compiled = compileK8sBackendOptions(options);
    // A fixed registration port (workers.yaml registrationPort), so a NetworkPolicy can open exactly it.
    k8s = { startMs: compiled.startDeadlineMs + K8S_REGISTRATION_SLACK_MS, registrationPort: compiled.registrationPort };
    backend = createK8sBackend(options);
  } else {
    backend = localOrStaticBackend(job);
  }
  const base = clusterOptionsFromJob(job, { runId: o.runId, backend, date: o.date });
  const workers = o.workers ?? base.workers;
  const cluster = await startCluster({
    ...base,
    workers,
    minWorkers: workers,
    ...(k8s ? { listenHost: '0.0.0.0', listenPort: k8s.registrationPort, startTimeoutMs: k8s.startMs } : {}),
  });
  const watch = watchWorkers(cluster.pool, log);
  // Instead of a line per worker and model: which runtimes the run's workers use, said once.
  log.info('workers.runtimes', { workers: cluster.pool.workers().length, runtimes: describeRuntimes(cluster.pool.workers()) });
  const models = new Map<string, Map<string, Uint8Array>>();
  return {
    participants: () => cluster.pool.ready(),
    loadModel(modelVersion, files) {
      models.set(modelVersion, files);
    },
    scoreShards: (s) => {
      let accepted = 0;
      metrics.queueDepth.set(s.shards.length);
      return runShards(
        cluster.pool,
        s.shards,
        {
          kind: 'score',
          modelVersions: s.modelVersions,
          products: s.products,
          onResult: (shardId, _attempt, results) => s.onResult(shardId, results),
          prepare: async (worker, signal) => {
            for (const v of s.modelVersions) {
              const files = models.get(v);
              if (!files) throw new Error(`model ${v} was not registered with loadModel`);
              await worker.loadModel(v, files, { signal });
            }
          },
        },
        {
          ...scheduleOptionsFromJob(job),
          stopSignal: s.stop,
          onEvent: (e) => {
            watch.onSchedule(e);
            if (e.type === 'lease') metrics.queueDepth.set(Math.max(0, s.shards.length - accepted - cluster.pool.ready().length));
            if (e.type === 'accepted') {
              accepted++;
              metrics.shardsDone.inc();
              metrics.sequences.inc(e.rows);
              s.onProgress?.(accepted, s.shards.length);
            }
            if (e.type === 'attempt-failed') {
              metrics.shardsFailed.inc();
              metrics.shardsRetried.inc();
            }
          },
        },
      );
    },
    workerEvents: () => ({ ...watch.counts }),
    close: () => {
      watch.stop();
      return cluster.stop();
    },
  };
}
