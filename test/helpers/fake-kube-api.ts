/**
 * A fake Kubernetes API server on 127.0.0.1: a real HTTP server that speaks exactly the API paths the
 * launcher (coordinator/cluster/k8s/) uses, records every call, and plays a tiny Job controller:
 *
 *   POST/GET/DELETE  /apis/batch/v1/namespaces/{ns}/jobs[/{name}]      (GET list too)
 *   POST/GET/DELETE  /api/v1/namespaces/{ns}/services[/{name}]
 *   POST/GET/DELETE  /api/v1/namespaces/{ns}/secrets[/{name}]
 *   GET              /api/v1/namespaces/{ns}/pods[?labelSelector=k=v,...]  and /pods/{name}
 *   POST/GET/PUT/DELETE  /apis/coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}]   (PUT checks resourceVersion: 409 when stale)
 *
 * When a Job is created it makes `completions` pods (labels from the template, ownerReferences to the Job)
 * in the state the scenario says: Pending, Running, ImagePullBackOff, Unschedulable (no nvidia.com/gpu),
 * InvalidImageName, or 'processes': each pod becomes a real child process running the pod's command
 * with its env resolved (values, downward API fields, secretKeyRef from the stored Secrets), so an
 * end-to-end test can run real workers "in pods"; a pod whose Secret does not exist yet waits in
 * CreateContainerConfigError and starts when the Secret is created, as the kubelet retries. Deleting an
 * object deletes what it owns (pods, Secrets, Services: ownerReferences by uid; pods' processes are
 * killed) unless propagationPolicy is Orphan: the garbage collector, for one level. No watch, no patch,
 * no admission.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type PodScenario = 'pending' | 'running' | 'image-pull-backoff' | 'invalid-image' | 'unschedulable-gpu' | 'processes';

export interface FakeKubeApiOptions {
  /** What the pods of each created Job do. @default 'running' */
  pods?: PodScenario;
  /** Calls answered 403 Forbidden, as '<verb> <resource>', e.g. 'create jobs'. @default [] */
  forbid?: string[];
  /** 'processes': rewrites a pod's argv (command + args), e.g. to a stand-in worker or a free port. @default as the pod says */
  argv?: (podArgv: string[], index: number) => string[];
  /** 'processes': working directory of the pod processes. @default process.cwd() */
  cwd?: string;
  /** 'processes': extra env for the pod with this completion index (e.g. a free port per pod). @default none */
  podEnv?: (index: number) => Record<string, string>;
}

export interface RecordedCall {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  status: number;
  /** RBAC terms: verb, API group ('' for core), resource. */
  verb: 'create' | 'get' | 'list' | 'delete' | 'watch' | 'update' | 'other';
  group: string;
  resource: string;
  namespace: string;
  name: string | null;
}

type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; uid: string; labels?: Record<string, string>; ownerReferences?: { uid: string; [k: string]: unknown }[]; [k: string]: unknown };
  spec?: any;
  status?: any;
  data?: Record<string, string>;
  [k: string]: unknown;
};

export interface FakeKubeApi {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly calls: RecordedCall[];
  /** Objects stored now, by resource ('jobs', 'services', 'secrets', 'pods'). */
  objects(resource: string): KubeObject[];
  /** Moves pods (all, or those whose name starts with `podPrefix`) into `scenario` (not 'processes'). */
  setPods(scenario: Exclude<PodScenario, 'processes'>, podPrefix?: string): void;
  /** Sets a condition on a Job's status, e.g. { type: 'Failed', reason: 'FailedIndexes', message: '...' }. */
  setJobCondition(name: string, condition: { type: string; reason: string; message: string }): void;
  /** Deletes an object behind the launcher's back (e.g. to prove 404 on delete is fine). */
  remove(resource: string, name: string): void;
  /** Resolves once `count` calls matching `match` have been answered (counts, not time). */
  waitForCalls(match: (c: RecordedCall) => boolean, count: number): Promise<void>;
  /** Input for KubeConfig.loadFromOptions(), pointing at this server. */
  kubeconfig(namespace: string): object;
  /** A kubeconfig file's YAML-compatible JSON text, for KUBECONFIG in subprocess tests. */
  kubeconfigText(namespace: string): string;
  /** Pod processes still running ('processes' scenario). */
  liveProcesses(): number;
  close(): Promise<void>;
}

export async function startFakeKubeApi(o: FakeKubeApiOptions = {}): Promise<FakeKubeApi> {
  const store = new Map<string, Map<string, KubeObject>>(); // key `${resource}/${ns}` → name → object
  const calls: RecordedCall[] = [];
  const waiters: { match: (c: RecordedCall) => boolean; count: number; resolve: () => void }[] = [];
  const processes = new Map<string, ChildProcess>(); // pod name → process
  const forbid = new Set(o.forbid ?? []);
  let resourceVersion = 1;
  let podSerial = 0;

  const bucket = (resource: string, ns: string) => {
    const key = `${resource}/${ns}`;
    let b = store.get(key);
    if (!b) store.set(key, (b = new Map()));
    return b;
  };
  const all = (resource: string) => [...store.entries()].filter(([k]) => k.startsWith(`${resource}/`)).flatMap(([, m]) => [...m.values()]);

  const killPod = (name: string) => {
    const p = processes.get(name);
    if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    processes.delete(name);
  };

  const createPodsFor = (job: KubeObject) => {
    const spec = job.spec ?? {};
    const count: number = spec.completions ?? 1;
    const template = spec.template ?? {};
    for (let index = 0; index < count; index++) {
      const name = `${job.metadata.name}-${index}-${(podSerial++).toString(36).padStart(5, 'x')}`;
      const pod: KubeObject = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name,
          namespace: job.metadata.namespace,
          uid: randomUUID(),
          creationTimestamp: new Date().toISOString(),
          labels: {
            ...(template.metadata?.labels ?? {}),
            'batch.kubernetes.io/job-name': job.metadata.name,
            'batch.kubernetes.io/job-completion-index': String(index),
          },
          annotations: { ...(template.metadata?.annotations ?? {}), 'batch.kubernetes.io/job-completion-index': String(index) },
          ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: job.metadata.name, uid: job.metadata.uid, controller: true }],
        },
        spec: { ...structuredClone(template.spec ?? {}), hostname: `${job.metadata.name}-${index}` },
        status: {},
      };
      bucket('pods', job.metadata.namespace).set(name, pod);
      if (o.pods === 'processes') startPodProcess(pod, index);
      else applyScenario(pod, o.pods ?? 'running');
    }
  };

  const startPodProcess = (pod: KubeObject, index: number) => {
    const container = pod.spec.containers[0];
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', JOB_COMPLETION_INDEX: String(index) };
    for (const e of container.env ?? []) {
      if (e.value !== undefined) env[e.name] = expand(e.value, env);
      else if (e.valueFrom?.fieldRef) env[e.name] = fieldValue(pod, e.valueFrom.fieldRef.fieldPath);
      else if (e.valueFrom?.secretKeyRef) {
        const secret = bucket('secrets', pod.metadata.namespace).get(e.valueFrom.secretKeyRef.name);
        const b64 = secret?.data?.[e.valueFrom.secretKeyRef.key];
        if (b64 === undefined) {
          pod.status = waitingStatus('CreateContainerConfigError', `secret "${e.valueFrom.secretKeyRef.name}" not found`, container.image);
          return;
        }
        env[e.name] = Buffer.from(b64, 'base64').toString('utf8');
      }
    }
    Object.assign(env, o.podEnv?.(index) ?? {});
    const podArgv: string[] = [...(container.command ?? []), ...(container.args ?? [])];
    const argv = o.argv ? o.argv(podArgv, index) : podArgv;
    const child = spawn(argv[0]!, argv.slice(1), { cwd: o.cwd ?? process.cwd(), env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    processes.set(pod.metadata.name, child);
    pod.status = { phase: 'Running', podIP: '127.0.0.1', conditions: [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: 'True' }], containerStatuses: [{ name: container.name, image: container.image, ready: true, restartCount: 0, state: { running: { startedAt: new Date().toISOString() } } }] };
    child.on('exit', (code, signal) => {
      const exitCode = code ?? (signal ? 128 + 15 : 1);
      pod.status = {
        phase: exitCode === 0 ? 'Succeeded' : 'Failed',
        podIP: '127.0.0.1',
        containerStatuses: [{ name: container.name, image: container.image, ready: false, restartCount: 0, state: { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', message: stderr.slice(-500) } } }],
      };
    });
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        body = text;
      }
      const { status, payload, call } = route(req.method ?? 'GET', req.url ?? '/', body);
      call.status = status;
      calls.push(call);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
      for (const w of [...waiters]) {
        if (calls.filter(w.match).length >= w.count) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
  });

  const route = (method: string, rawUrl: string, body: unknown): { status: number; payload: unknown; call: RecordedCall } => {
    const url = new URL(rawUrl, 'http://fake');
    const query = Object.fromEntries(url.searchParams.entries());
    const m = /^\/(?:api\/v1|apis\/(batch|coordination\.k8s\.io)\/v1)\/namespaces\/([^/]+)\/([a-z]+)(?:\/([^/]+))?$/.exec(url.pathname);
    const call: RecordedCall = { method, path: url.pathname, query, body, status: 0, verb: 'other', group: '', resource: '', namespace: '', name: null };
    if (!m) return { status: 404, payload: statusBody(404, 'NotFound', `the server could not find the requested resource (${method} ${url.pathname})`), call };
    const [, group = '', ns = '', resource = '', name] = m;
    Object.assign(call, { group, resource, namespace: ns, name: name ?? null });
    const known = group === 'batch' ? ['jobs'] : group === 'coordination.k8s.io' ? ['leases'] : ['pods', 'services', 'secrets'];
    if (!known.includes(resource)) return { status: 404, payload: statusBody(404, 'NotFound', `resource ${resource} is not served by the fake API`), call };
    call.verb =
      method === 'POST' && !name ? 'create'
      : method === 'DELETE' && name ? 'delete'
      : method === 'PUT' && name && resource === 'leases' ? 'update'
      : method === 'GET' ? (query.watch === 'true' ? 'watch' : name ? 'get' : 'list')
      : 'other';
    if (call.verb === 'other' || call.verb === 'watch') return { status: 405, payload: statusBody(405, 'MethodNotAllowed', `${method} ${url.pathname} is not implemented by the fake API`), call };
    if (resource === 'pods' && (call.verb === 'create' || call.verb === 'delete')) return { status: 405, payload: statusBody(405, 'MethodNotAllowed', 'the fake API makes pods itself'), call };
    if (forbid.has(`${call.verb} ${resource}`)) {
      const gr = group ? `${resource}.${group}` : resource;
      return {
        status: 403,
        payload: statusBody(403, 'Forbidden', `${gr} is forbidden: User "system:serviceaccount:${ns}:nextbuy-coordinator" cannot ${call.verb} resource "${resource}" in API group "${group}" in the namespace "${ns}"`),
        call,
      };
    }
    const b = bucket(resource, ns);
    switch (call.verb) {
      case 'create': {
        const obj = structuredClone(body) as KubeObject;
        if (!obj?.metadata?.name) return { status: 422, payload: statusBody(422, 'Invalid', 'metadata.name: Required value'), call };
        if (b.has(obj.metadata.name)) return { status: 409, payload: statusBody(409, 'AlreadyExists', `${resource} "${obj.metadata.name}" already exists`), call };
        if (obj.metadata.namespace && obj.metadata.namespace !== ns) return { status: 400, payload: statusBody(400, 'BadRequest', 'the namespace of the object does not match the namespace on the request'), call };
        obj.metadata = { ...obj.metadata, namespace: ns, uid: randomUUID(), creationTimestamp: new Date().toISOString(), resourceVersion: String(resourceVersion++) };
        if (resource === 'jobs') obj.status = {};
        b.set(obj.metadata.name, obj);
        if (resource === 'jobs') createPodsFor(obj);
        if (resource === 'secrets' && o.pods === 'processes') {
          for (const pod of bucket('pods', ns).values()) {
            if (pod.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CreateContainerConfigError') {
              startPodProcess(pod, Number(pod.metadata.labels?.['batch.kubernetes.io/job-completion-index'] ?? 0));
            }
          }
        }
        return { status: 201, payload: obj, call };
      }
      case 'update': {
        const obj = b.get(name!);
        if (!obj) return { status: 404, payload: statusBody(404, 'NotFound', `${resource} "${name}" not found`), call };
        const next = structuredClone(body) as KubeObject;
        if (next?.metadata?.resourceVersion !== obj.metadata.resourceVersion) {
          return { status: 409, payload: statusBody(409, 'Conflict', `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`), call };
        }
        next.metadata = { ...obj.metadata, ...next.metadata, resourceVersion: String(resourceVersion++) };
        b.set(name!, next);
        return { status: 200, payload: next, call };
      }
      case 'get': {
        const obj = b.get(name!);
        return obj ? { status: 200, payload: obj, call } : { status: 404, payload: statusBody(404, 'NotFound', `${resource} "${name}" not found`), call };
      }
      case 'list': {
        let selector: ((labels: Record<string, string>) => boolean) | null;
        try {
          selector = parseSelector(query.labelSelector ?? '');
        } catch (e) {
          return { status: 400, payload: statusBody(400, 'BadRequest', (e as Error).message), call };
        }
        const items = [...b.values()].filter((x) => !selector || selector(x.metadata.labels ?? {}));
        const kind = { pods: 'PodList', jobs: 'JobList', services: 'ServiceList', secrets: 'SecretList' }[resource];
        return { status: 200, payload: { apiVersion: group ? `${group}/v1` : 'v1', kind, metadata: { resourceVersion: String(resourceVersion) }, items }, call };
      }
      case 'delete': {
        const obj = b.get(name!);
        if (!obj) return { status: 404, payload: statusBody(404, 'NotFound', `${resource} "${name}" not found`), call };
        b.delete(name!);
        const policy = query.propagationPolicy ?? (body as { propagationPolicy?: string } | null)?.propagationPolicy ?? 'Background';
        if (policy !== 'Orphan') {
          for (const dependentResource of ['pods', 'services', 'secrets']) {
            const dependents = bucket(dependentResource, ns);
            for (const [depName, dep] of [...dependents]) {
              if (!dep.metadata.ownerReferences?.some((r) => r.uid === obj.metadata.uid)) continue;
              if (dependentResource === 'pods') killPod(depName);
              dependents.delete(depName);
            }
          }
        }
        return { status: 200, payload: { ...statusBody(200, '', ''), status: 'Success', details: { name, kind: resource, uid: obj.metadata.uid } }, call };
      }
    }
    return { status: 500, payload: statusBody(500, 'InternalError', 'unreachable'), call };
  };

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const kubeconfig = (namespace: string) => ({
    clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
    users: [{ name: 'fake', token: 'fake-token' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake', namespace }],
    currentContext: 'fake',
  });

  return {
    url,
    calls,
    objects: (resource) => all(resource),
    setPods(scenario, podPrefix) {
      for (const pod of all('pods')) if (!podPrefix || pod.metadata.name.startsWith(podPrefix)) applyScenario(pod, scenario);
    },
    setJobCondition(name, condition) {
      const job = all('jobs').find((j) => j.metadata.name === name);
      if (!job) throw new Error(`no job ${name}`);
      job.status = { ...(job.status ?? {}), conditions: [...(job.status?.conditions ?? []), { ...condition, status: 'True', lastTransitionTime: new Date().toISOString() }] };
    },
    remove(resource, name) {
      for (const [key, b] of store) if (key.startsWith(`${resource}/`)) b.delete(name);
    },
    waitForCalls(match, count) {
      if (calls.filter(match).length >= count) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ match, count, resolve }));
    },
    kubeconfig,
    kubeconfigText(namespace) {
      const k = kubeconfig(namespace);
      // JSON is YAML: the client's kubeconfig loader reads it as is.
      return JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: k.clusters.map((c) => ({ name: c.name, cluster: { server: c.server, 'insecure-skip-tls-verify': true } })),
        users: k.users.map((u) => ({ name: u.name, user: { token: u.token } })),
        contexts: k.contexts.map((c) => ({ name: c.name, context: { cluster: c.cluster, user: c.user, namespace: c.namespace } })),
        'current-context': k.currentContext,
      });
    },
    liveProcesses: () => [...processes.values()].filter((p) => p.exitCode === null && p.signalCode === null).length,
    async close() {
      for (const name of [...processes.keys()]) killPod(name);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function applyScenario(pod: KubeObject, scenario: Exclude<PodScenario, 'processes'>): void {
  const image: string = pod.spec?.containers?.[0]?.image ?? '';
  const name: string = pod.spec?.containers?.[0]?.name ?? 'worker';
  switch (scenario) {
    case 'pending':
      pod.status = waitingStatus('ContainerCreating', '', image, name);
      return;
    case 'running':
      pod.status = {
        phase: 'Running',
        podIP: '10.0.0.' + (1 + (pod.metadata.name.length % 200)),
        conditions: [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: 'True' }],
        containerStatuses: [{ name, image, ready: true, restartCount: 0, state: { running: { startedAt: new Date().toISOString() } } }],
      };
      return;
    case 'image-pull-backoff':
      pod.status = waitingStatus('ImagePullBackOff', `Back-off pulling image "${image}"`, image, name);
      return;
    case 'invalid-image':
      pod.status = waitingStatus('InvalidImageName', `Failed to apply default image tag "${image}": couldn't parse image name "${image}": invalid reference format`, image, name);
      return;
    case 'unschedulable-gpu':
      pod.status = {
        phase: 'Pending',
        conditions: [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message: '0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.',
          },
        ],
      };
      return;
  }
}

function waitingStatus(reason: string, message: string, image: string, name = 'worker') {
  return {
    phase: 'Pending',
    conditions: [{ type: 'PodScheduled', status: 'True' }],
    containerStatuses: [{ name, image, ready: false, restartCount: 0, state: { waiting: { reason, ...(message ? { message } : {}) } } }],
  };
}

function fieldValue(pod: KubeObject, path: string): string {
  switch (path) {
    case 'metadata.name':
      return pod.metadata.name;
    case 'metadata.namespace':
      return pod.metadata.namespace;
    case 'metadata.uid':
      return pod.metadata.uid;
    case 'status.podIP':
      return '127.0.0.1';
    default:
      throw new Error(`the fake API does not resolve fieldRef ${path}`);
  }
}

/** Kubernetes' $(VAR) expansion of env values from earlier variables. */
function expand(value: string, env: Record<string, string>): string {
  return value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, v: string) => env[v] ?? whole);
}

/** Equality-based selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-separated. */
function parseSelector(s: string): ((labels: Record<string, string>) => boolean) | null {
  if (!s) return null;
  const tests = s.split(',').map((part) => {
    const p = part.trim();
    let m: RegExpExecArray | null;
    if ((m = /^([\w./-]+)\s*!=\s*([\w.-]*)$/.exec(p))) return (l: Record<string, string>) => l[m![1]!] !== m![2];
    if ((m = /^([\w./-]+)\s*==?\s*([\w.-]*)$/.exec(p))) return (l: Record<string, string>) => l[m![1]!] === m![2];
    if ((m = /^!([\w./-]+)$/.exec(p))) return (l: Record<string, string>) => !(m![1]! in l);
    if ((m = /^([\w./-]+)$/.exec(p))) return (l: Record<string, string>) => m![1]! in l;
    throw new Error(`unable to parse requirement: "${p}" (the fake API supports only equality selectors)`);
  });
  return (labels) => tests.every((t) => t(labels));
}

function statusBody(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}
