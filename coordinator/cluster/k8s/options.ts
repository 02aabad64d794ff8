/**
 * The Kubernetes backend's options: what a run's workers look like (image, resources, GPUs, node
 * placement, TLS), compiled with their defaults, and workers.yaml, the file the manifests configure
 * the launcher with.
 */
import { readFile } from 'node:fs/promises';
import type { KubeConfig, V1Affinity, V1Toleration } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { parseDuration, requireDuration } from '../../../core/duration.js';
import { ClusterError, JobFileError } from '../../../core/errors.js';
import type { Logger } from '../../../core/log.js';
import { DEFAULT_WORKER_METRICS_PORT } from '../../../worker/health.js';

export interface K8sResources {
  /** e.g. { cpu: '2', memory: '4Gi' } */
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

/**
 * Additions to every worker pod (workers.yaml `podTemplate`), for what a platform team sets on its
 * clusters: affinity, priority, runtime class, extra labels and annotations (e.g. cost allocation).
 */
export interface K8sPodTemplate {
  /** Added to the pod's labels; nextbuy's own (app.kubernetes.io/*, nextbuy.dev/*) cannot be changed. @default {} */
  labels?: Record<string, string>;
  /** Added to the pod's annotations. @default {} */
  annotations?: Record<string, string>;
  /** @default none */
  affinity?: V1Affinity;
  /** Added after the top-level `tolerations`. @default [] */
  tolerations?: V1Toleration[];
  /** e.g. a PriorityClass that lets the night preempt batch work. @default none */
  priorityClassName?: string;
  /** e.g. 'nvidia' where the GPU runtime is not the node's default. @default none */
  runtimeClassName?: string;
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
  /**
   * The port the coordinator's registration server listens on (workers dial it; the NetworkPolicy in
   * k8s/base opens it to the workers only; 0 = any free port, for tests: no NetworkPolicy can name it).
   * @default 7070 (DEFAULT_REGISTRATION_PORT)
   */
  registrationPort?: number;
  /** The workers' gRPC port (NEXTBUY_WORKER_PORT). @default 7071 */
  workerPort?: number;
  /** The workers' /healthz, /readyz and /metrics port (NEXTBUY_METRICS_PORT). @default 9470 (DEFAULT_WORKER_METRICS_PORT) */
  metricsPort?: number;
  /** A worker pod not running this long after it appeared fails the run (image pull errors, no GPU, ...). @default '10m' */
  startDeadline?: string | number;
  /** Restarts of one worker index before that index is given up (the run goes on with fewer workers). @default 2 */
  backoffLimitPerIndex?: number;
  /** A cap on the worker Job's whole life, in case nobody deletes it. @default '12h' */
  activeDeadline?: string | number;
  /**
   * Each worker's scratch space: the size limit of its /tmp emptyDir, requested as ephemeral-storage
   * so the scheduler places the pod where that much disk is free. @default '8Gi'
   */
  scratch?: string;
  /** See K8sPodTemplate. @default {} */
  podTemplate?: K8sPodTemplate;
  /**
   * A Kueue LocalQueue for gang admission: the worker Job is created suspended with the label
   * kueue.x-k8s.io/queue-name, and Kueue starts it only when quota for all its pods (GPUs included)
   * is free, so a night never half-starts and waits out `startDeadline`. Needs Kueue in the cluster.
   * @default none: the Job starts at once
   */
  queue?: string;
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
  registrationPort: number;
  workerPort: number;
  metricsPort: number;
  scratch: string;
  podTemplate: Required<Pick<K8sPodTemplate, 'labels' | 'annotations' | 'tolerations'>> & Omit<K8sPodTemplate, 'labels' | 'annotations' | 'tolerations'>;
  queue: string | null;
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
    registrationPort: o.registrationPort ?? DEFAULT_REGISTRATION_PORT,
    workerPort: o.workerPort ?? 7071,
    metricsPort: o.metricsPort ?? DEFAULT_WORKER_METRICS_PORT,
    scratch: o.scratch ?? '8Gi',
    podTemplate: {
      ...o.podTemplate,
      labels: { ...(o.podTemplate?.labels ?? {}) },
      annotations: { ...(o.podTemplate?.annotations ?? {}) },
      tolerations: [...(o.podTemplate?.tolerations ?? [])],
    },
    queue: o.queue ?? null,
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
/** The coordinator's registration port unless workers.yaml says otherwise (k8s/base names it). */
export const DEFAULT_REGISTRATION_PORT = 7070;
/** Label prefixes nextbuy sets itself: podTemplate.labels may not touch them (they select pods). */
const OWN_LABEL_PREFIXES = ['app.kubernetes.io/', 'nextbuy.dev/', 'kueue.x-k8s.io/'];
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
  'registrationPort',
  'workerPort',
  'metricsPort',
  'scratch',
  'podTemplate',
  'queue',
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
  const tolerationList = (v: unknown, field: string): V1Toleration[] | undefined => {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) throw bad(field, 'must be a list of tolerations');
    return v.map((t, i) => {
      if (!isRecord(t)) throw bad(`${field}[${i}]`, 'must be a mapping (key, operator, value, effect)');
      for (const k of Object.keys(t)) {
        if (!['key', 'operator', 'value', 'effect', 'tolerationSeconds'].includes(k)) throw bad(`${field}[${i}].${k}`, 'is not a toleration field');
      }
      return t as V1Toleration;
    });
  };
  const tolerations = tolerationList(raw.tolerations, 'tolerations');
  let podTemplate: K8sPodTemplate | undefined;
  if (raw.podTemplate !== undefined && raw.podTemplate !== null) {
    const t = raw.podTemplate;
    if (!isRecord(t)) throw bad('podTemplate', 'must be a mapping (labels, annotations, affinity, tolerations, priorityClassName, runtimeClassName)');
    const keys = ['labels', 'annotations', 'affinity', 'tolerations', 'priorityClassName', 'runtimeClassName'];
    for (const k of Object.keys(t)) if (!keys.includes(k)) throw bad(`podTemplate.${k}`, `is not a known field; use one of ${keys.join(', ')}`);
    const labels = stringMap(t.labels, 'podTemplate.labels');
    for (const k of Object.keys(labels ?? {})) {
      if (OWN_LABEL_PREFIXES.some((p) => k.startsWith(p))) throw bad(`podTemplate.labels.${k}`, `is set by nextbuy itself (${OWN_LABEL_PREFIXES.join(', ')}); use another label name`);
    }
    if (t.affinity !== undefined && t.affinity !== null && !isRecord(t.affinity)) throw bad('podTemplate.affinity', 'must be a Kubernetes affinity mapping (nodeAffinity, podAffinity, podAntiAffinity)');
    podTemplate = dropUndefined({
      labels,
      annotations: stringMap(t.annotations, 'podTemplate.annotations'),
      affinity: (t.affinity ?? undefined) as V1Affinity | undefined,
      tolerations: tolerationList(t.tolerations, 'podTemplate.tolerations'),
      priorityClassName: str(t.priorityClassName, 'podTemplate.priorityClassName'),
      runtimeClassName: str(t.runtimeClassName, 'podTemplate.runtimeClassName'),
    });
  }
  const scratch = str(raw.scratch, 'scratch');
  if (scratch !== undefined && !/^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$/.test(scratch)) throw bad('scratch', `must be a size like "8Gi", got "${scratch}"`);
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
    registrationPort: int(raw.registrationPort, 'registrationPort', 0, 65_535),
    workerPort: int(raw.workerPort, 'workerPort', 1, 65_535),
    metricsPort: int(raw.metricsPort, 'metricsPort', 1, 65_535),
    startDeadline: duration(raw.startDeadline, 'startDeadline'),
    backoffLimitPerIndex: int(raw.backoffLimitPerIndex, 'backoffLimitPerIndex', 0, 100),
    activeDeadline: duration(raw.activeDeadline, 'activeDeadline'),
    scratch,
    podTemplate,
    queue: str(raw.queue, 'queue'),
    env: stringMap(raw.env, 'env'),
    tlsSecret: str(raw.tlsSecret, 'tlsSecret'),
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
