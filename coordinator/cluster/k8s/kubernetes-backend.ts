/**
 * The Kubernetes ClusterBackend (`--env k8s`): for each run the coordinator creates, in its own namespace,
 *   - a Secret holding the run's token,
 *   - a headless Service (stable DNS `<job>-<index>.<service>` for every worker pod),
 *   - an Indexed Job of `workers` pods (completions = parallelism), one worker process per pod,
 * The Job is created first and owned by the coordinator's pod; the Secret and the Service are owned by
 * the Job (ownerReferences), so deleting the Job removes all three and a dead coordinator's objects go
 * with its pod. The coordinator's Role therefore needs exactly: jobs create/get/delete, pods list,
 * services create, secrets create (k8s/base/rbac.yaml; it can read, list or delete no Secret).
 * Until the Secret exists the pods wait in CreateContainerConfigError, which the kubelet retries. Workers register themselves with the coordinator (proto: Coordinator.Register);
 * this backend only creates, watches and deletes Kubernetes objects.
 *
 * The worker Job is built here, in code, and nowhere else: k8s/ has no copy of it. The tests validate
 * what this module sends against the Kubernetes schemas, and check that the Role in k8s/base allows
 * every API call it makes.
 *
 * Watching is polling (GET job, LIST pods by label) with core/backoff.ts delays: a pod stuck in
 * ImagePullBackOff, Unschedulable (no free nvidia.com/gpu) or otherwise Pending past `startDeadline`
 * makes failures() reject with a ClusterError naming the pod, the reason, the message and what to check.
 *
 * @kubernetes/client-node is imported lazily (it takes ~0.6 s to load): `--env local` never pays for it.
 */
import { Backoff } from '../../../core/backoff.js';
import { formatDuration } from '../../../core/duration.js';
import { ClusterError } from '../../../core/errors.js';
import { log as defaultLog, type Logger } from '../../../core/log.js';
import type { ClusterBackend, LaunchContext } from '../backend.js';
import { apiError, apiStatus, connectApi, type Api } from './api.js';
import type { V1Job } from '@kubernetes/client-node';
import { buildWorkerObjects, LABELS, ownedByJob, type WorkerObjects } from './objects.js';
import { compileK8sBackendOptions, type CompiledK8sBackendOptions, type K8sBackendOptions } from './options.js';
import { inspectWorkers } from './pod-status.js';

export function createK8sBackend(options: K8sBackendOptions): ClusterBackend {
  return new K8sBackend(options);
}

class K8sBackend implements ClusterBackend {
  readonly kind = 'k8s' as const;
  private readonly o: CompiledK8sBackendOptions;
  private readonly log: Logger;
  private api: Api | null = null;
  private objects: WorkerObjects | null = null;
  private readonly poll = new AbortController();
  private readonly failure: Promise<never>;
  private rejectFailure!: (e: ClusterError) => void;
  private stopping: Promise<void> | null = null;
  private started = false;

  constructor(private readonly options: K8sBackendOptions) {
    this.o = compileK8sBackendOptions(options);
    this.log = options.logger ?? defaultLog;
    this.failure = new Promise<never>((_, reject) => {
      this.rejectFailure = reject;
    });
    // Marks the rejection as handled: the coordinator may call failures() only after it happened.
    this.failure.catch(() => {});
  }

  async start(ctx: LaunchContext): Promise<void> {
    if (this.started) throw new ClusterError('this Kubernetes backend was already started; create one per run');
    this.started = true;
    const api = await this.connect();
    const objects = buildWorkerObjects(this.o, ctx, api.namespace);
    this.objects = objects;
    const ns = api.namespace;
    try {
      const job: V1Job | null = await this.create('job', () => api.batch.createNamespacedJob({ namespace: ns, body: objects.job }), () =>
        api.batch.readNamespacedJob({ name: objects.job.metadata!.name!, namespace: ns }),
      );
      const owner = job ?? objects.job; // null only without an `existing` reader: never for the Job
      await this.create('secret', () => api.core.createNamespacedSecret({ namespace: ns, body: ownedByJob(objects.secret, owner) }));
      await this.create('service', () => api.core.createNamespacedService({ namespace: ns, body: ownedByJob(objects.service, owner) }));
    } catch (e) {
      this.stopping = null; // a stop() during start() ran before these objects existed
      await this.stop().catch(() => {});
      throw e;
    }
    this.log.info('k8s.workers_launched', {
      namespace: ns,
      job: objects.job.metadata!.name!,
      workers: ctx.workers,
      gpus_per_pod: this.o.gpusPerPod,
      image: this.o.image,
      start_deadline_s: Math.round(this.o.startDeadlineMs / 1000),
    });
    void this.watch(api, objects, Date.now());
  }

  failures(): Promise<never> {
    return this.failure;
  }

  stop(): Promise<void> {
    this.poll.abort();
    this.stopping ??= this.deleteAll().catch((e: unknown) => {
      this.stopping = null; // a later stop() tries again
      throw e;
    });
    return this.stopping;
  }

  private async connect(): Promise<Api> {
    this.api ??= await connectApi({ kubeConfig: this.options.kubeConfig, apiServer: this.options.apiServer, namespace: this.o.namespace });
    return this.api;
  }

  /** Creates an object; on 409 (this launch id, run × coordinator pod, already made it) returns `existing()`. */
  private async create<T>(what: 'secret' | 'service' | 'job', call: () => Promise<T>, existing?: () => Promise<T>): Promise<T | null> {
    if (this.poll.signal.aborted) throw new ClusterError('the Kubernetes backend was stopped while it was starting the workers');
    try {
      return await call();
    } catch (e) {
      if (apiStatus(e) !== 409) throw apiError(`create the worker ${what}`, e, this.api!.namespace);
      try {
        return existing ? await existing() : null;
      } catch (e2) {
        throw apiError(`read the existing worker ${what}`, e2, this.api!.namespace);
      }
    }
  }

  private async deleteAll(): Promise<void> {
    const api = this.api;
    const objects = this.objects;
    if (!api || !objects) return;
    const ns = api.namespace;
    const problems: string[] = [];
    const remove = async (what: 'job', call: () => Promise<unknown>) => {
      try {
        await call();
      } catch (e) {
        if (apiStatus(e) !== 404) problems.push(apiError(`delete the worker ${what}`, e, ns).message);
      }
    };
    // Background propagation: the Job goes at once, the garbage collector removes its pods, Secret and Service.
    await remove('job', () => api.batch.deleteNamespacedJob({ name: objects.job.metadata!.name!, namespace: ns, propagationPolicy: 'Background' }));
    if (problems.length) {
      throw new ClusterError(
        `${problems.join('; ')}. They are owned by the coordinator pod and go when it is deleted; to remove them now: ` +
          `kubectl -n ${ns} delete job,service,secret -l ${LABELS.launch}=${objects.launchId}`,
      );
    }
    this.log.info('k8s.workers_deleted', { namespace: ns, job: objects.job.metadata!.name! });
  }

  /** Polls the Job and its pods until stop(), rejecting `failure` on the first problem that will not go away. */
  private async watch(api: Api, objects: WorkerObjects, launchedAt: number): Promise<void> {
    const signal = this.poll.signal;
    const backoff = new Backoff({ initialDelayMs: this.o.pollEveryMs, maxDelayMs: this.o.pollMaxMs });
    const firstSeen = new Map<string, number>();
    let apiFailingSince: number | null = null;
    while (!signal.aborted) {
      try {
        const problem = await inspectWorkers(api, objects, this.o.startDeadlineMs, launchedAt, firstSeen);
        apiFailingSince = null;
        if (problem && !signal.aborted) {
          this.log.error('k8s.workers_failed', { namespace: api.namespace, job: objects.job.metadata!.name!, error: problem });
          this.rejectFailure(problem);
          return;
        }
      } catch (e) {
        if (signal.aborted) return;
        const now = Date.now();
        apiFailingSince ??= now;
        this.log.warn('k8s.poll_failed', { namespace: api.namespace, error: e as Error });
        if (now - apiFailingSince >= this.o.startDeadlineMs) {
          this.rejectFailure(apiError(`watch the worker pods for ${formatDuration(now - apiFailingSince)}`, e, api.namespace));
          return;
        }
      }
      await backoff.wait(signal).catch(() => {});
    }
  }
}
