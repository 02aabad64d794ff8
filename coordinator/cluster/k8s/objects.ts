/**
 * The Kubernetes objects of one run's workers, built in code and nowhere else (k8s/ has no copy): a
 * Secret with the run's token, a headless Service, and an Indexed Job of worker pods.
 */
import { createHash } from 'node:crypto';
import type {
  V1EnvVar,
  V1Job,
  V1ObjectMeta,
  V1OwnerReference,
  V1Secret,
  V1Service,
} from '@kubernetes/client-node';
import { ClusterError, EXIT_CODES } from '../../../core/errors.js';
import { WORKER_ENV } from '../../../proto/index.js';
import type { LaunchContext } from '../backend.js';
import { TLS_MOUNT, type CompiledK8sBackendOptions } from './options.js';

export const LABELS = {
  name: 'app.kubernetes.io/name',
  component: 'app.kubernetes.io/component',
  managedBy: 'app.kubernetes.io/managed-by',
  account: 'nextbuy.dev/account',
  runId: 'nextbuy.dev/run-id',
  launch: 'nextbuy.dev/launch',
  /** Kueue's LocalQueue label (workers.yaml `queue`). */
  kueueQueue: 'kueue.x-k8s.io/queue-name',
} as const;

/** The worker command line in the images (compiled JavaScript, `npm run build`; no tsx at run time). */
export const WORKER_ARGV = ['node', 'dist/worker/main.js'];

/** The worker container's name (podFailurePolicy rules refer to it). */
export const WORKER_CONTAINER = 'worker';
/** UID the images create and run as (k8s/images/*.Dockerfile). */
export const NEXTBUY_UID = 10001;

/** Exit codes a retry of the same pod cannot fix (bad flags, job file, protocol, security): fail the index at once. */
const NON_RETRYABLE_EXIT_CODES = [EXIT_CODES.USAGE, EXIT_CODES.JOB_FILE, EXIT_CODES.PROTOCOL, EXIT_CODES.SECURITY];

export interface WorkerObjects {
  /** Names every object and selects the pods: unique per run and coordinator pod. */
  launchId: string;
  namespace: string;
  secret: V1Secret;
  service: V1Service;
  job: V1Job;
}

/**
 * Builds the Secret, headless Service and Indexed Job for one launch. Pure: the tests validate its
 * output against the Kubernetes schemas.
 */
export function buildWorkerObjects(o: CompiledK8sBackendOptions, ctx: LaunchContext, namespace: string): WorkerObjects {
  if (!o.coordinatorPod) {
    throw new ClusterError(
      'the Kubernetes backend needs the coordinator pod\'s name and uid for ownerReferences (so workers die with it): ' +
        'set POD_NAME and POD_UID from the downward API (fieldRef metadata.name / metadata.uid), as k8s/base/cronjob.yaml does',
    );
  }
  if (!Number.isInteger(ctx.workers) || ctx.workers < 1) throw new ClusterError(`cluster.workers must be ≥ 1 for --env k8s, got ${ctx.workers}`);
  const launchId = createHash('sha256').update(`${ctx.runId}\0${o.coordinatorPod.uid}`).digest('hex').slice(0, 10);
  const name = `nextbuy-w-${dnsLabel(ctx.account, 24)}-${launchId}`;
  const labels: Record<string, string> = {
    [LABELS.name]: 'nextbuy',
    [LABELS.component]: 'worker',
    [LABELS.managedBy]: 'nextbuy-coordinator',
    [LABELS.account]: labelValue(ctx.account),
    [LABELS.runId]: labelValue(ctx.runId),
    [LABELS.launch]: launchId,
  };
  const ownerReferences: V1OwnerReference[] = [
    // blockOwnerDeletion would need update rights on pods/finalizers; plain background GC is enough here.
    { apiVersion: 'v1', kind: 'Pod', name: o.coordinatorPod.name, uid: o.coordinatorPod.uid, controller: false, blockOwnerDeletion: false },
  ];
  const meta = (objectName: string): V1ObjectMeta => ({
    name: objectName,
    namespace,
    labels: { ...labels },
    annotations: { 'nextbuy.dev/run-id': ctx.runId, 'nextbuy.dev/account': ctx.account },
    ownerReferences: ownerReferences.map((r) => ({ ...r })),
  });

  const secretName = `${name}-token`;
  const secret: V1Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: meta(secretName),
    type: 'Opaque',
    immutable: true,
    data: { token: Buffer.from(ctx.token, 'utf8').toString('base64') },
  };

  const service: V1Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(name),
    spec: {
      clusterIP: 'None',
      selector: { [LABELS.launch]: launchId },
      // Workers register before they are Ready; their DNS names must resolve by then.
      publishNotReadyAddresses: true,
      ports: [{ name: 'grpc', port: o.workerPort, targetPort: o.workerPort, protocol: 'TCP' }],
    },
  };

  const limits: Record<string, string> = { ...o.resources.limits };
  // /tmp is an emptyDir on the node's disk: request what it may fill, so the scheduler counts it.
  const requests: Record<string, string> = { 'ephemeral-storage': o.scratch, ...o.resources.requests };
  if (o.gpusPerPod > 0) limits['nvidia.com/gpu'] = requests['nvidia.com/gpu'] = String(o.gpusPerPod);

  const fieldEnv = (envName: string, fieldPath: string): V1EnvVar => ({ name: envName, valueFrom: { fieldRef: { fieldPath } } });
  const env: V1EnvVar[] = [
    fieldEnv('POD_NAME', 'metadata.name'),
    fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
    fieldEnv('POD_IP', 'status.podIP'),
    fieldEnv(WORKER_ENV.name, 'metadata.name'),
    // The address the worker registers: its pod IP (pod DNS names wait for the Service's endpoints to sync).
    fieldEnv(WORKER_ENV.advertiseHost, 'status.podIP'),
    { name: WORKER_ENV.coordinator, value: coordinatorAddress(ctx.coordinatorAddress, o.coordinatorHost) },
    { name: WORKER_ENV.runId, value: ctx.runId },
    { name: WORKER_ENV.account, value: ctx.account },
    ...(ctx.date ? [{ name: WORKER_ENV.date, value: ctx.date }] : []),
    { name: WORKER_ENV.token, valueFrom: { secretKeyRef: { name: secretName, key: 'token' } } },
    { name: 'NEXTBUY_WORKER_PORT', value: String(o.workerPort) },
    { name: 'NEXTBUY_METRICS_PORT', value: String(o.metricsPort) },
    // GPU pods score with ONNX Runtime's CUDA provider (CPU, with a warning, where it cannot start).
    ...(o.gpusPerPod > 0 && !(WORKER_ENV.onnxDevice in o.env) ? [{ name: WORKER_ENV.onnxDevice, value: 'cuda' }] : []),
    ...Object.entries(o.env).map(([k, v]) => ({ name: k, value: v })),
  ];
  // Mutual TLS: the coordinator's certificate paths are its own; workers read theirs from a mounted Secret.
  if (ctx.tls && !o.tlsSecret) {
    throw new ClusterError('the job sets security.tls but workers.yaml names no tlsSecret: create a Secret with ca.crt, tls.crt and tls.key for the workers and name it there');
  }
  const tlsMount = ctx.tls && o.tlsSecret ? { name: 'tls', mountPath: TLS_MOUNT, readOnly: true } : null;
  if (tlsMount) {
    env.push(
      { name: WORKER_ENV.tlsCa, value: `${TLS_MOUNT}/ca.crt` },
      { name: WORKER_ENV.tlsCert, value: `${TLS_MOUNT}/tls.crt` },
      { name: WORKER_ENV.tlsKey, value: `${TLS_MOUNT}/tls.key` },
    );
  }

  const tolerations = [...o.tolerations, ...o.podTemplate.tolerations].map((t) => ({ ...t }));
  const job: V1Job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: o.queue ? { ...meta(name), labels: { ...labels, [LABELS.kueueQueue]: o.queue } } : meta(name),
    spec: {
      // Under Kueue the Job starts suspended; Kueue unsuspends it once quota for every pod is free (gang admission).
      ...(o.queue ? { suspend: true } : {}),
      completionMode: 'Indexed',
      completions: ctx.workers,
      parallelism: ctx.workers,
      backoffLimitPerIndex: o.backoffLimitPerIndex,
      // The Job fails (and failures() reports it) only when every index has failed.
      maxFailedIndexes: ctx.workers - 1,
      // A replacement pod starts only once the old one is gone: never two workers with one index.
      podReplacementPolicy: 'Failed',
      podFailurePolicy: {
        rules: [
          // Preemption, node drain, eviction: not the worker's fault; retry without counting it.
          { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
          { action: 'FailIndex', onExitCodes: { containerName: WORKER_CONTAINER, operator: 'In', values: NON_RETRYABLE_EXIT_CODES } },
        ],
      },
      activeDeadlineSeconds: o.activeDeadlineSeconds,
      ttlSecondsAfterFinished: 3600,
      template: {
        metadata: {
          labels: { ...o.podTemplate.labels, ...labels },
          annotations: { ...o.podTemplate.annotations, 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(o.metricsPort), 'prometheus.io/path': '/metrics' },
        },
        spec: {
          restartPolicy: 'Never',
          subdomain: name,
          // Workers never call the Kubernetes API.
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 30,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: NEXTBUY_UID,
            runAsGroup: NEXTBUY_UID,
            fsGroup: NEXTBUY_UID,
            // Only a volume whose root has another group is chowned: no recursive walk at every start.
            fsGroupChangePolicy: 'OnRootMismatch',
            seccompProfile: { type: 'RuntimeDefault' },
          },
          ...(Object.keys(o.nodeSelector).length ? { nodeSelector: { ...o.nodeSelector } } : {}),
          ...(tolerations.length ? { tolerations } : {}),
          ...(o.podTemplate.affinity ? { affinity: structuredClone(o.podTemplate.affinity) } : {}),
          ...(o.podTemplate.priorityClassName ? { priorityClassName: o.podTemplate.priorityClassName } : {}),
          ...(o.podTemplate.runtimeClassName ? { runtimeClassName: o.podTemplate.runtimeClassName } : {}),
          ...(o.imagePullSecrets.length ? { imagePullSecrets: o.imagePullSecrets.map((n) => ({ name: n })) } : {}),
          containers: [
            {
              name: WORKER_CONTAINER,
              image: o.image,
              imagePullPolicy: o.imagePullPolicy,
              // `args`, not `command`: the image's ENTRYPOINT (tini) stays PID 1 and forwards SIGTERM, on which a worker drains.
              args: [...WORKER_ARGV, '--host', '0.0.0.0', '--port', String(o.workerPort)],
              ports: [
                { name: 'grpc', containerPort: o.workerPort, protocol: 'TCP' },
                { name: 'metrics', containerPort: o.metricsPort, protocol: 'TCP' },
              ],
              env,
              resources: { requests, limits },
              // worker/health.ts on the metrics port: alive = the process answers; ready = registered with the
              // coordinator and not draining. Loading tfjs-node-gpu on a cold node can take minutes: the startup
              // probe allows 5. Readiness gates no traffic (workers register by pod IP, the Service publishes
              // not-ready pods); it shows in `kubectl get pods` and in kube-state-metrics.
              startupProbe: { httpGet: { path: '/healthz', port: 'metrics' }, periodSeconds: 5, failureThreshold: 60 },
              livenessProbe: { httpGet: { path: '/healthz', port: 'metrics' }, periodSeconds: 20, timeoutSeconds: 5, failureThreshold: 3 },
              readinessProbe: { httpGet: { path: '/readyz', port: 'metrics' }, periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 2 },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }, ...(tlsMount ? [tlsMount] : [])],
            },
          ],
          volumes: [
            { name: 'tmp', emptyDir: { sizeLimit: o.scratch } },
            ...(tlsMount ? [{ name: 'tls', secret: { secretName: o.tlsSecret!, defaultMode: 0o440 } }] : []),
          ],
        },
      },
    },
  };
  return { launchId, namespace, secret, service, job };
}

/**
 * `o` (the run's Secret or Service) owned by the worker Job as created (its uid), so that deleting the
 * Job deletes them too: the coordinator needs no delete right on Secrets or Services, and a dead
 * coordinator's objects still go (its pod owns the Job).
 */
export function ownedByJob<T extends { metadata?: V1ObjectMeta }>(o: T, job: V1Job): T {
  const uid = job.metadata?.uid;
  if (!uid) throw new ClusterError(`the API server returned worker Job ${job.metadata?.name ?? ''} without a uid: cannot make the run's Secret and Service owned by it`);
  return {
    ...o,
    metadata: {
      ...o.metadata,
      ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: job.metadata!.name!, uid, controller: false, blockOwnerDeletion: false }],
    },
  };
}

/** Replaces a wildcard or loopback host with `host` (the coordinator pod's IP), keeping the port. */
export function coordinatorAddress(address: string, host: string | null): string {
  const m = /^(?:\[(.+)\]|([^:]+)):(\d+)$/.exec(address);
  if (!m) throw new ClusterError(`coordinator address must be host:port, got "${address}"`);
  const h = m[1] ?? m[2]!;
  if (!['0.0.0.0', '::', '127.0.0.1', '::1', 'localhost'].includes(h)) return address;
  if (!host) {
    throw new ClusterError(
      `workers cannot dial the coordinator at ${address} from their pods: set POD_IP from the downward API (fieldRef status.podIP), as k8s/base/cronjob.yaml does`,
    );
  }
  return `${host.includes(':') ? `[${host}]` : host}:${m[3]}`;
}

/** A DNS-1123 label fragment: lowercase letters, digits and '-', at most `max` characters. */
function dnsLabel(s: string, max: number): string {
  const cleaned = s.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+/, '').slice(0, max).replace(/-+$/, '');
  return cleaned || 'x';
}

/** A label value: ≤ 63 of [A-Za-z0-9._-], alphanumeric at both ends (the raw value goes in an annotation). */
function labelValue(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 63).replace(/^[^A-Za-z0-9]+/, '').replace(/[^A-Za-z0-9]+$/, '');
}
