/** The Kubernetes API as the backend uses it, and its errors as ClusterErrors that say what to fix. */
import { readFileSync } from 'node:fs';
import type { BatchV1Api, CoordinationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { ClusterError } from '../../../core/errors.js';

export interface Api {
  batch: BatchV1Api;
  core: CoreV1Api;
  coordination: CoordinationV1Api;
  namespace: string;
}

export interface ConnectOptions {
  /** @default `apiServer` if given, else KubeConfig.loadFromDefault() (KUBECONFIG, ~/.kube/config, in-cluster) */
  kubeConfig?: KubeConfig;
  /** An API server URL without credentials or TLS checks (tests' fake API server). @default none */
  apiServer?: string;
  /** @default the service account's namespace, else the kubeconfig context's, else 'default' */
  namespace?: string | null;
}

/** The API clients for the configured cluster, or a ClusterError saying how to configure one. */
export async function connectApi(o: ConnectOptions): Promise<Api> {
  const k8s = await import('@kubernetes/client-node');
  const kc = await loadKubeConfig(o);
  const namespace = o.namespace ?? inClusterNamespace() ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  return { batch: kc.makeApiClient(k8s.BatchV1Api), core: kc.makeApiClient(k8s.CoreV1Api), coordination: kc.makeApiClient(k8s.CoordinationV1Api), namespace };
}

/**
 * The kube config `connectApi` uses (no network call): `kubeConfig`, else `apiServer`, else KUBECONFIG,
 * ~/.kube/config or the in-cluster service account. A ClusterError says how to configure one when none is found.
 */
export async function loadKubeConfig(o: Pick<ConnectOptions, 'kubeConfig' | 'apiServer' | 'namespace'>): Promise<KubeConfig> {
  const k8s = await import('@kubernetes/client-node');
  let kc = o.kubeConfig;
  if (!kc) {
    kc = new k8s.KubeConfig();
    if (o.apiServer) kc.loadFromOptions(serverOnlyConfig(o.apiServer, o.namespace ?? 'default'));
    else {
      try {
        kc.loadFromDefault();
      } catch (e) {
        const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
        throw new ClusterError(`KUBECONFIG ${process.env.KUBECONFIG || '(~/.kube/config)'} cannot be loaded (${why}): point KUBECONFIG at a readable kube config, or unset it`);
      }
    }
  }
  // loadFromDefault() falls back to http://localhost:8080 when it finds no configuration at all.
  const server = kc.getCurrentCluster()?.server;
  if (!server || (!o.kubeConfig && !o.apiServer && server === 'http://localhost:8080')) {
    throw new ClusterError(
      'no Kubernetes configuration found: --env k8s runs the coordinator in a pod (in-cluster service account, see k8s/base/cronjob.yaml), ' +
        'or set KUBECONFIG to reach a cluster',
    );
  }
  return kc;
}

/** KubeConfig.loadFromOptions() input for a bare API server URL (no credentials, TLS unchecked): tests only. */
export function serverOnlyConfig(server: string, namespace: string) {
  return {
    clusters: [{ name: 'nextbuy', server, skipTLSVerify: true }],
    users: [{ name: 'nextbuy' }],
    contexts: [{ name: 'nextbuy', cluster: 'nextbuy', user: 'nextbuy', namespace }],
    currentContext: 'nextbuy',
  };
}

export function inClusterNamespace(): string | null {
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || null;
  } catch {
    return null;
  }
}

export function apiStatus(e: unknown): number | null {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : null;
}

/** A ClusterError saying which call failed, what the API server said, and for 401/403 what to fix. */
export function apiError(doing: string, e: unknown, namespace: string): ClusterError {
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
