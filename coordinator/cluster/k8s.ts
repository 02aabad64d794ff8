/**
 * The Kubernetes ClusterBackend (`--env k8s`): for each run the coordinator creates, in its own namespace,
 *   - a Secret holding the run's token,
 *   - a headless Service (stable DNS `<job>-<index>.<service>` for every worker pod),
 *   - an Indexed Job of `workers` pods (completions = parallelism), one worker process per pod,
 * all owned by the coordinator's pod (ownerReferences), so they die with it if the coordinator dies
 * without cleaning up. Workers register themselves with the coordinator (proto: Coordinator.Register);
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
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import type {
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  V1EnvVar,
  V1Job,
  V1ObjectMeta,
  V1OwnerReference,
  V1Pod,
  V1Secret,
  V1Service,
  V1Toleration,
} from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { Backoff } from '../../core/backoff.js';
import { parseDuration, requireDuration, formatDuration } from '../../core/duration.js';
import { ClusterError, EXIT_CODES, JobFileError } from '../../core/errors.js';
import { log as defaultLog, type Logger } from '../../core/log.js';
import { WORKER_ENV } from '../../proto/index.js';
import type { ClusterBackend, LaunchContext } from './backend.js';

// ─── Options ────────────────────────────────────────────────────────────────────────────────────

export interface K8sResources {
  /** e.g. { cpu: '2', memory: '4Gi' } */
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

export interface K8sBackendOptions {
  /** Required. The worker image, e.g. 'registry.example.com/nextbuy-worker-gpu:0.1.0'. */
  image: string;
  /**
   * Where the worker objects go. @default the coordinator pod's namespace: POD_NAMESPACE, else the
   * service account's namespace file, else the kubeconfig context's namespace, else 'default'
   */
  namespace?: string;
  /** nvidia.com/gpu per worker pod (requested and limited alike, as extended resources must be). @default 0 */
  gpusPerPod?: number;
  /** CPU and memory per worker pod. @default DEFAULT_WORKER_RESOURCES */
  resources?: K8sResources;
  /** @default {} */
  nodeSelector?: Record<string, string>;
  /** e.g. GPU nodes' `nvidia.com/gpu:NoSchedule` taint. @default [] */
  tolerations?: V1Toleration[];
  /** @default 'IfNotPresent' */
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** Names of Secrets used to pull the image. @default [] */
  imagePullSecrets?: string[];
  /**
   * The coordinator pod that owns every object created (ownerReferences). @default from the downward
   * API env POD_NAME and POD_UID (see k8s/base/cronjob.yaml); start() fails without one.
   */
  coordinatorPod?: { name: string; uid: string };
  /**
   * Host that workers dial when LaunchContext.coordinatorAddress names a wildcard or loopback host
   * ('0.0.0.0', '::', '127.0.0.1', 'localhost'). @default POD_IP (downward API)
   */
  coordinatorHost?: string;
  /** The workers' gRPC port (NEXTBUY_WORKER_PORT). @default 7071 */
  workerPort?: number;
  /** The workers' /healthz and /metrics port (NEXTBUY_METRICS_PORT). @default 9464 */
  metricsPort?: number;
  /** A worker pod not running this long after it appeared fails the run (image pull errors, no GPU, ...). @default '10m' */
  startDeadline?: string | number;
  /** Restarts of one worker index before that index is given up (the run goes on with fewer workers). @default 2 */
  backoffLimitPerIndex?: number;
  /** A cap on the worker Job's whole life, in case nobody deletes it. @default '12h' */
  activeDeadline?: string | number;
  /** Extra environment for the workers, e.g. { NEXTBUY_LOG: 'debug' }. @default {} */
  env?: Record<string, string>;
  /**
   * A Secret holding the workers' mutual-TLS files under the keys ca.crt, tls.crt and tls.key, mounted
   * read-only at /etc/nextbuy/tls. Required when the job sets security.tls. @default none
   */
  tlsSecret?: string;
  /** @default loaded lazily: `apiServer` if given, else KubeConfig.loadFromDefault() (KUBECONFIG, ~/.kube/config, in-cluster) */
  kubeConfig?: KubeConfig;
  /** An API server URL to talk to without credentials or TLS checks (tests' fake API server). @default none */
  apiServer?: string;
  /** First delay between polls of the pods; later ones grow (core/backoff.ts) up to `pollMax`. @default '1s' */
  pollEvery?: string | number;
  /** @default '10s' */
  pollMax?: string | number;
  /** @default the process logger */
  logger?: Logger;
  /** Where POD_NAME, POD_UID, POD_NAMESPACE and POD_IP (downward API) are read from. @default process.env */
  processEnv?: NodeJS.ProcessEnv;
}

export const DEFAULT_WORKER_RESOURCES: Required<K8sResources> = {
  requests: { cpu: '1', memory: '2Gi' },
  limits: { memory: '4Gi' },
};

/** The one normalised form the backend works with. */
export interface CompiledK8sBackendOptions {
  image: string;
  namespace: string | null;
  gpusPerPod: number;
  resources: Required<K8sResources>;
  nodeSelector: Record<string, string>;
  tolerations: V1Toleration[];
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  imagePullSecrets: string[];
  coordinatorPod: { name: string; uid: string } | null;
  coordinatorHost: string | null;
  workerPort: number;
  metricsPort: number;
  startDeadlineMs: number;
  backoffLimitPerIndex: number;
  activeDeadlineSeconds: number;
  env: Record<string, string>;
  /** See K8sBackendOptions.tlsSecret. @default null */
  tlsSecret?: string | null;
  pollEveryMs: number;
  pollMaxMs: number;
}

export function compileK8sBackendOptions(o: K8sBackendOptions): CompiledK8sBackendOptions {
  const env = o.processEnv ?? process.env;
  if (!o.image) throw new ClusterError('the Kubernetes backend needs a worker image (workers.yaml: image)');
  const podName = o.coordinatorPod?.name ?? env.POD_NAME;
  const podUid = o.coordinatorPod?.uid ?? env.POD_UID;
  const gpus = o.gpusPerPod ?? 0;
  if (!Number.isInteger(gpus) || gpus < 0) throw new ClusterError(`gpusPerPod must be a whole number ≥ 0, got ${gpus}`);
  return {
    image: o.image,
    namespace: o.namespace ?? env.POD_NAMESPACE ?? null,
    gpusPerPod: gpus,
    resources: {
      requests: { ...(o.resources?.requests ?? DEFAULT_WORKER_RESOURCES.requests) },
      limits: { ...(o.resources?.limits ?? DEFAULT_WORKER_RESOURCES.limits) },
    },
    nodeSelector: { ...(o.nodeSelector ?? {}) },
    tolerations: [...(o.tolerations ?? [])],
    imagePullPolicy: o.imagePullPolicy ?? 'IfNotPresent',
    imagePullSecrets: [...(o.imagePullSecrets ?? [])],
    coordinatorPod: podName && podUid ? { name: podName, uid: podUid } : null,
    coordinatorHost: o.coordinatorHost ?? env.POD_IP ?? null,
    workerPort: o.workerPort ?? 7071,
    metricsPort: o.metricsPort ?? 9464,
    startDeadlineMs: requireDuration(o.startDeadline ?? '10m', 'startDeadline'),
    backoffLimitPerIndex: o.backoffLimitPerIndex ?? 2,
    activeDeadlineSeconds: Math.ceil(requireDuration(o.activeDeadline ?? '12h', 'activeDeadline') / 1000),
    env: { ...(o.env ?? {}) },
    tlsSecret: o.tlsSecret ?? null,
    pollEveryMs: requireDuration(o.pollEvery ?? '1s', 'pollEvery'),
    pollMaxMs: requireDuration(o.pollMax ?? '10s', 'pollMax'),
  };
}

// ─── workers.yaml: how the manifests configure the launcher ─────────────────────────────────────

/** Where the CronJob mounts the launcher's settings (ConfigMap nextbuy-config, key workers.yaml). */
export const DEFAULT_WORKERS_CONF = '/etc/nextbuy/workers.yaml';
/** Where a worker pod mounts K8sBackendOptions.tlsSecret. */
export const TLS_MOUNT = '/etc/nextbuy/tls';

const WORKERS_YAML_KEYS = [
  'image',
  'gpusPerPod',
  'resources',
  'nodeSelector',
  'tolerations',
  'imagePullPolicy',
  'imagePullSecrets',
  'workerPort',
  'metricsPort',
  'startDeadline',
  'backoffLimitPerIndex',
  'activeDeadline',
  'env',
  'tlsSecret',
] as const;

/**
 * Reads the launcher's settings from workers.yaml (path: `file`, else NEXTBUY_WORKERS_CONF, else
 * DEFAULT_WORKERS_CONF); the coordinator pod's identity comes from the downward-API env at start().
 * Errors name the file and the field, like job file errors.
 */
export async function loadK8sBackendOptions(file?: string, env: NodeJS.ProcessEnv = process.env): Promise<K8sBackendOptions> {
  const path = file ?? env.NEXTBUY_WORKERS_CONF ?? DEFAULT_WORKERS_CONF;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new JobFileError(path, '(file)', `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): mount ConfigMap nextbuy-config at /etc/nextbuy or set NEXTBUY_WORKERS_CONF`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new JobFileError(path, '(file)', `is not valid YAML: ${(e as Error).message}`);
  }
  return { ...parseWorkersYaml(raw, path), processEnv: env };
}

/** Checks a parsed workers.yaml and returns the options it sets. */
export function parseWorkersYaml(raw: unknown, file: string): K8sBackendOptions {
  const bad = (field: string, problem: string) => new JobFileError(file, field, problem);
  if (!isRecord(raw)) throw bad('(top level)', 'must be a mapping with at least `image:`');
  for (const k of Object.keys(raw)) {
    if (!(WORKERS_YAML_KEYS as readonly string[]).includes(k)) throw bad(k, `is not a known field; use one of ${WORKERS_YAML_KEYS.join(', ')}`);
  }
  const str = (v: unknown, field: string): string | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v === '') throw bad(field, `must be a non-empty string, got ${JSON.stringify(v)}`);
    return v;
  };
  const int = (v: unknown, field: string, min: number, max = 2 ** 31 - 1): number | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(field, `must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
    return v;
  };
  const stringMap = (v: unknown, field: string): Record<string, string> | undefined => {
    if (v === undefined || v === null) return undefined;
    if (!isRecord(v)) throw bad(field, 'must be a mapping of names to strings');
    const out: Record<string, string> = {};
    for (const [k, x] of Object.entries(v)) {
      if (typeof x !== 'string' && typeof x !== 'number') throw bad(`${field}.${k}`, `must be a string (quote quantities like "2" or "4Gi"), got ${JSON.stringify(x)}`);
      out[k] = String(x);
    }
    return out;
  };
  const duration = (v: unknown, field: string): string | number | undefined => {
    if (v === undefined || v === null) return undefined;
    if ((typeof v !== 'string' && typeof v !== 'number') || parseDuration(v) === undefined) throw bad(field, `must be a duration like '10m', got ${JSON.stringify(v)}`);
    return v;
  };

  const image = str(raw.image, 'image');
  if (!image) throw bad('image', 'is required: the worker image, e.g. registry.example.com/nextbuy-worker-gpu:0.1.0');
  let resources: K8sResources | undefined;
  if (raw.resources !== undefined && raw.resources !== null) {
    if (!isRecord(raw.resources)) throw bad('resources', 'must be a mapping with requests and/or limits');
    for (const k of Object.keys(raw.resources)) if (k !== 'requests' && k !== 'limits') throw bad(`resources.${k}`, 'is not a known field; use requests or limits');
    resources = { requests: stringMap(raw.resources.requests, 'resources.requests'), limits: stringMap(raw.resources.limits, 'resources.limits') };
    for (const part of ['requests', 'limits'] as const) {
      if (resources[part]?.['nvidia.com/gpu'] !== undefined) throw bad(`resources.${part}`, 'must not set nvidia.com/gpu: use gpusPerPod');
    }
  }
  let tolerations: V1Toleration[] | undefined;
  if (raw.tolerations !== undefined && raw.tolerations !== null) {
    if (!Array.isArray(raw.tolerations)) throw bad('tolerations', 'must be a list of tolerations');
    tolerations = raw.tolerations.map((t, i) => {
      if (!isRecord(t)) throw bad(`tolerations[${i}]`, 'must be a mapping (key, operator, value, effect)');
      for (const k of Object.keys(t)) {
        if (!['key', 'operator', 'value', 'effect', 'tolerationSeconds'].includes(k)) throw bad(`tolerations[${i}].${k}`, 'is not a toleration field');
      }
      return t as V1Toleration;
    });
  }
  let imagePullSecrets: string[] | undefined;
  if (raw.imagePullSecrets !== undefined && raw.imagePullSecrets !== null) {
    if (!Array.isArray(raw.imagePullSecrets) || raw.imagePullSecrets.some((s) => typeof s !== 'string')) throw bad('imagePullSecrets', 'must be a list of Secret names');
    imagePullSecrets = raw.imagePullSecrets as string[];
  }
  const pullPolicy = str(raw.imagePullPolicy, 'imagePullPolicy');
  if (pullPolicy !== undefined && !['Always', 'IfNotPresent', 'Never'].includes(pullPolicy)) throw bad('imagePullPolicy', `must be Always, IfNotPresent or Never, got "${pullPolicy}"`);

  return dropUndefined({
    image,
    gpusPerPod: int(raw.gpusPerPod, 'gpusPerPod', 0, 64),
    resources,
    nodeSelector: stringMap(raw.nodeSelector, 'nodeSelector'),
    tolerations,
    imagePullPolicy: pullPolicy as K8sBackendOptions['imagePullPolicy'],
    imagePullSecrets,
    workerPort: int(raw.workerPort, 'workerPort', 1, 65_535),
    metricsPort: int(raw.metricsPort, 'metricsPort', 1, 65_535),
    startDeadline: duration(raw.startDeadline, 'startDeadline'),
    backoffLimitPerIndex: int(raw.backoffLimitPerIndex, 'backoffLimitPerIndex', 0, 100),
    activeDeadline: duration(raw.activeDeadline, 'activeDeadline'),
    env: stringMap(raw.env, 'env'),
    tlsSecret: str(raw.tlsSecret, 'tlsSecret'),
  });
}

// ─── The objects ────────────────────────────────────────────────────────────────────────────────

export const LABELS = {
  name: 'app.kubernetes.io/name',
  component: 'app.kubernetes.io/component',
  managedBy: 'app.kubernetes.io/managed-by',
  account: 'nextbuy.dev/account',
  runId: 'nextbuy.dev/run-id',
  launch: 'nextbuy.dev/launch',
} as const;

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
  const requests: Record<string, string> = { ...o.resources.requests };
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
    { name: WORKER_ENV.token, valueFrom: { secretKeyRef: { name: secretName, key: 'token' } } },
    { name: 'NEXTBUY_WORKER_PORT', value: String(o.workerPort) },
    { name: 'NEXTBUY_METRICS_PORT', value: String(o.metricsPort) },
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

  const job: V1Job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: meta(name),
    spec: {
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
          labels: { ...labels },
          annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(o.metricsPort), 'prometheus.io/path': '/metrics' },
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
            seccompProfile: { type: 'RuntimeDefault' },
          },
          ...(Object.keys(o.nodeSelector).length ? { nodeSelector: { ...o.nodeSelector } } : {}),
          ...(o.tolerations.length ? { tolerations: o.tolerations.map((t) => ({ ...t })) } : {}),
          ...(o.imagePullSecrets.length ? { imagePullSecrets: o.imagePullSecrets.map((n) => ({ name: n })) } : {}),
          containers: [
            {
              name: WORKER_CONTAINER,
              image: o.image,
              imagePullPolicy: o.imagePullPolicy,
              // `args`, not `command`: the image's ENTRYPOINT (tini) stays PID 1 and forwards SIGTERM, on which a worker drains.
              args: ['node', '--import', 'tsx', 'worker/main.ts', '--host', '0.0.0.0', '--port', String(o.workerPort)],
              ports: [
                { name: 'grpc', containerPort: o.workerPort, protocol: 'TCP' },
                { name: 'metrics', containerPort: o.metricsPort, protocol: 'TCP' },
              ],
              env,
              resources: { requests, limits },
              // Alive = the gRPC port accepts connections (a hung worker is caught by the coordinator's heartbeats).
              // Ready = /healthz on the metrics port; readiness gates nothing here (workers register by pod IP,
              // the Service publishes not-ready pods), so a worker without a metrics server is not restarted.
              // Loading tfjs-node-gpu on a cold node can take minutes: the startup probe allows 5.
              startupProbe: { tcpSocket: { port: 'grpc' }, periodSeconds: 5, failureThreshold: 60 },
              livenessProbe: { tcpSocket: { port: 'grpc' }, periodSeconds: 20, timeoutSeconds: 5, failureThreshold: 3 },
              readinessProbe: { httpGet: { path: '/healthz', port: 'metrics' }, periodSeconds: 10 },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }, ...(tlsMount ? [tlsMount] : [])],
            },
          ],
          volumes: [
            { name: 'tmp', emptyDir: { sizeLimit: '8Gi' } },
            ...(tlsMount ? [{ name: 'tls', secret: { secretName: o.tlsSecret!, defaultMode: 0o440 } }] : []),
          ],
        },
      },
    },
  };
  return { launchId, namespace, secret, service, job };
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

// ─── The backend ────────────────────────────────────────────────────────────────────────────────

interface Api {
  batch: BatchV1Api;
  core: CoreV1Api;
  namespace: string;
}

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
      await this.create('secret', () => api.core.createNamespacedSecret({ namespace: ns, body: objects.secret }));
      await this.create('service', () => api.core.createNamespacedService({ namespace: ns, body: objects.service }));
      await this.create('job', () => api.batch.createNamespacedJob({ namespace: ns, body: objects.job }));
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
    if (this.api) return this.api;
    const k8s = await import('@kubernetes/client-node');
    let kc = this.options.kubeConfig;
    if (!kc) {
      kc = new k8s.KubeConfig();
      if (this.options.apiServer) kc.loadFromOptions(serverOnlyConfig(this.options.apiServer, this.o.namespace ?? 'default'));
      else kc.loadFromDefault();
    }
    // loadFromDefault() falls back to http://localhost:8080 when it finds no configuration at all.
    const server = kc.getCurrentCluster()?.server;
    if (!server || (!this.options.kubeConfig && !this.options.apiServer && server === 'http://localhost:8080')) {
      throw new ClusterError(
        'no Kubernetes configuration found: --env k8s runs the coordinator in a pod (in-cluster service account, see k8s/base/cronjob.yaml), ' +
          'or set KUBECONFIG to reach a cluster',
      );
    }
    const namespace = this.o.namespace ?? inClusterNamespace() ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
    this.api = { batch: kc.makeApiClient(k8s.BatchV1Api), core: kc.makeApiClient(k8s.CoreV1Api), namespace };
    return this.api;
  }

  private async create(what: 'secret' | 'service' | 'job', call: () => Promise<unknown>): Promise<void> {
    if (this.poll.signal.aborted) throw new ClusterError('the Kubernetes backend was stopped while it was starting the workers');
    try {
      await call();
    } catch (e) {
      // 409: this launch id (run × coordinator pod) already made it, e.g. start() retried after a timeout.
      if (apiStatus(e) !== 409) throw apiError(`create the worker ${what}`, e, this.api!.namespace);
    }
  }

  private async deleteAll(): Promise<void> {
    const api = this.api;
    const objects = this.objects;
    if (!api || !objects) return;
    const ns = api.namespace;
    const problems: string[] = [];
    const remove = async (what: 'secret' | 'service' | 'job', call: () => Promise<unknown>) => {
      try {
        await call();
      } catch (e) {
        if (apiStatus(e) !== 404) problems.push(apiError(`delete the worker ${what}`, e, ns).message);
      }
    };
    // Background propagation: the Job goes at once, the garbage collector removes its pods.
    await Promise.all([
      remove('job', () => api.batch.deleteNamespacedJob({ name: objects.job.metadata!.name!, namespace: ns, propagationPolicy: 'Background' })),
      remove('service', () => api.core.deleteNamespacedService({ name: objects.service.metadata!.name!, namespace: ns })),
      remove('secret', () => api.core.deleteNamespacedSecret({ name: objects.secret.metadata!.name!, namespace: ns })),
    ]);
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

/** Why the workers will not come, or null while they still may. */
async function inspectWorkers(
  api: Api,
  objects: WorkerObjects,
  startDeadlineMs: number,
  launchedAt: number,
  firstSeen: Map<string, number>,
  now: () => number = Date.now,
): Promise<ClusterError | null> {
  const ns = api.namespace;
  const jobName = objects.job.metadata!.name!;
  let job: V1Job;
  try {
    job = await api.batch.readNamespacedJob({ name: jobName, namespace: ns });
  } catch (e) {
    if (apiStatus(e) === 404) return new ClusterError(`worker Job ${ns}/${jobName} was deleted while the run needed it (by someone, or by activeDeadlineSeconds cleanup)`);
    throw e;
  }
  const failed = job.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
  if (failed) {
    return new ClusterError(
      `worker Job ${ns}/${jobName} failed: ${failed.reason ?? 'unknown reason'}${failed.message ? `: ${failed.message}` : ''}. ` +
        `Check the workers' logs: kubectl -n ${ns} logs -l ${LABELS.launch}=${objects.launchId} --tail=50`,
    );
  }
  const pods = (await api.core.listNamespacedPod({ namespace: ns, labelSelector: `${LABELS.launch}=${objects.launchId}` })).items;
  const t = now();
  if (pods.length === 0 && t - launchedAt >= startDeadlineMs) {
    return new ClusterError(
      `no worker pod was created within ${formatDuration(startDeadlineMs)} of launching Job ${ns}/${jobName}: ` +
        `a ResourceQuota, LimitRange or admission policy may be refusing them. Check: kubectl -n ${ns} describe job ${jobName}`,
    );
  }
  for (const pod of pods) {
    const podName = pod.metadata?.name ?? '(unnamed)';
    const key = pod.metadata?.uid ?? podName;
    if (!firstSeen.has(key)) firstSeen.set(key, Math.max(t, launchedAt));
    const stuck = whyNotStarted(pod);
    if (!stuck) continue;
    const waited = t - firstSeen.get(key)!;
    if (!stuck.fatal && waited < startDeadlineMs) continue;
    const forHow = stuck.fatal ? '' : ` (for ${formatDuration(waited)}, start deadline ${formatDuration(startDeadlineMs)})`;
    return new ClusterError(`worker pod ${ns}/${podName} cannot start: ${stuck.reason}${stuck.message ? `: ${stuck.message}` : ''}${forHow}. ${stuck.hint(ns, podName)}`);
  }
  return null;
}

interface Stuck {
  reason: string;
  message: string;
  /** Cannot get better by waiting. */
  fatal: boolean;
  hint(ns: string, pod: string): string;
}

const IMAGE_REASONS = new Set(['ImagePullBackOff', 'ErrImagePull', 'InvalidImageName', 'ErrImageNeverPull', 'RegistryUnavailable']);
const FATAL_REASONS = new Set(['InvalidImageName', 'ErrImageNeverPull']);

/**
 * Why a pod has not started: null once it runs (or has finished; the Job controller handles failed pods).
 * Any Pending pod gets a reason, which becomes an error only past the start deadline unless `fatal`.
 */
export function whyNotStarted(pod: V1Pod): Stuck | null {
  const phase = pod.status?.phase;
  if (phase !== 'Pending' && phase !== undefined) return null;
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  for (const s of statuses) {
    const waiting = s.state?.waiting;
    if (!waiting?.reason) continue;
    if (IMAGE_REASONS.has(waiting.reason)) {
      return {
        reason: waiting.reason,
        message: waiting.message ?? '',
        fatal: FATAL_REASONS.has(waiting.reason),
        hint: (ns, p) =>
          `Check that image ${s.image ?? ''} exists and its tag is right (workers.yaml: image), and that namespace ${ns} may pull it ` +
          `(imagePullSecrets). Details: kubectl -n ${ns} describe pod ${p}`,
      };
    }
    if (waiting.reason === 'CreateContainerConfigError' || waiting.reason === 'CreateContainerError') {
      return {
        reason: waiting.reason,
        message: waiting.message ?? '',
        fatal: false,
        hint: (ns, p) => `Check the Secrets and ConfigMaps the pod refers to. Details: kubectl -n ${ns} describe pod ${p}`,
      };
    }
  }
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False') {
    const message = scheduled.message ?? '';
    const gpu = /nvidia\.com\/gpu/.test(message);
    return {
      reason: scheduled.reason ?? 'Unschedulable',
      message,
      fatal: false,
      hint: (ns, p) =>
        gpu
          ? `No node has a free nvidia.com/gpu that the workers may use: check GPU node capacity (kubectl describe nodes), that workers.yaml ` +
            `tolerations and nodeSelector match the GPU nodes, and namespace ${ns}'s quota; or lower cluster.workers or gpusPerPod. Details: kubectl -n ${ns} describe pod ${p}`
          : `Check node capacity against workers.yaml resources, nodeSelector and tolerations. Details: kubectl -n ${ns} describe pod ${p}`,
    };
  }
  const waitingReason = statuses.map((s) => s.state?.waiting?.reason).find((r) => r);
  return {
    reason: waitingReason ?? 'Pending',
    message: statuses.map((s) => s.state?.waiting?.message).find((m) => m) ?? '',
    fatal: false,
    hint: (ns, p) => `Details: kubectl -n ${ns} describe pod ${p} (volumes, image size, node readiness)`,
  };
}

// ─── Helpers ────────────────────────────────────────────────────────────────────────────────────

/** KubeConfig.loadFromOptions() input for a bare API server URL (no credentials, TLS unchecked): tests only. */
export function serverOnlyConfig(server: string, namespace: string) {
  return {
    clusters: [{ name: 'nextbuy', server, skipTLSVerify: true }],
    users: [{ name: 'nextbuy' }],
    contexts: [{ name: 'nextbuy', cluster: 'nextbuy', user: 'nextbuy', namespace }],
    currentContext: 'nextbuy',
  };
}

function inClusterNamespace(): string | null {
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || null;
  } catch {
    return null;
  }
}

function apiStatus(e: unknown): number | null {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : null;
}

/** A ClusterError saying which call failed, what the API server said, and for 401/403 what to fix. */
function apiError(doing: string, e: unknown, namespace: string): ClusterError {
  const status = apiStatus(e);
  let said = (e as Error)?.message ?? String(e);
  const body = (e as { body?: unknown } | null)?.body;
  if (typeof body === 'string' && body) {
    try {
      said = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      said = body.slice(0, 500);
    }
  }
  const fix =
    status === 403
      ? ` The coordinator's service account lacks a permission: apply k8s/base/rbac.yaml (Role nextbuy-coordinator) in namespace ${namespace}.`
      : status === 401
        ? ' The API server did not accept the credentials: check the service account token (or KUBECONFIG).'
        : '';
  return new ClusterError(`could not ${doing} in namespace ${namespace}${status ? ` (HTTP ${status})` : ''}: ${said}.${fix}`, { cause: e });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
