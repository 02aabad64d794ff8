/**
 * The Kubernetes launcher against a fake API server speaking the same paths (no API server can run
 * here): what it creates, how it reports pods that never start, and that it cleans up.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, test } from 'vitest';
import type { ClusterBackend, LaunchContext } from '../coordinator/cluster/backend.js';
import { createK8sBackend, LABELS, loadK8sBackendOptions, type K8sBackendOptions } from '../coordinator/cluster/k8s/index.js';
import { ClusterError, JobFileError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { startFakeKubeApi, type FakeKubeApi, type FakeKubeApiOptions, type RecordedCall } from './helpers/fake-kube-api.js';
import { loadYamlFile, validateObject } from './helpers/k8s-manifests.js';

const NAMESPACE = 'nextbuy-test';
const COORDINATOR_POD = { name: 'nextbuy-nightly-29012345-x7k2p', uid: '6f1c2a3b-0d4e-4f5a-9b6c-7d8e9f0a1b2c' };
const quiet = createLogger({ stream: { write: () => true }, level: 'error' });

function launch(overrides: Partial<LaunchContext> = {}): LaunchContext {
  return {
    coordinatorAddress: '0.0.0.0:7070',
    runId: 'taobao-2017-12-02-r1',
    account: 'taobao',
    token: `tok-${Math.floor(Math.random() * 1e9).toString(36)}`,
    workers: 3,
    ...overrides,
  };
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => {});
});

async function fakeApi(o: FakeKubeApiOptions = {}): Promise<FakeKubeApi> {
  const api = await startFakeKubeApi(o);
  cleanups.push(() => api.close());
  return api;
}

function backendFor(api: FakeKubeApi, o: Partial<K8sBackendOptions> = {}): ClusterBackend {
  const b = createK8sBackend({
    image: 'registry.example.com/nextbuy/worker-gpu:0.1.0',
    apiServer: api.url,
    namespace: NAMESPACE,
    coordinatorPod: COORDINATOR_POD,
    coordinatorHost: '10.1.2.3',
    pollEvery: '5ms',
    pollMax: '20ms',
    logger: quiet,
    ...o,
  });
  cleanups.push(() => b.stop());
  return b;
}

const created = (api: FakeKubeApi, resource: string) => api.calls.find((c) => c.verb === 'create' && c.resource === resource)?.body as any;
const podLists = (c: RecordedCall) => c.verb === 'list' && c.resource === 'pods';

/** Settles to 'pending' if failures() has not rejected by the time `until` resolves. */
async function failureBy(backend: ClusterBackend, until: Promise<void>): Promise<ClusterError | 'pending'> {
  let settled: ClusterError | null = null;
  backend.failures().catch((e: ClusterError) => (settled = e));
  await until;
  await new Promise((r) => setImmediate(r));
  return settled ?? 'pending';
}

describe('Kubernetes launcher', () => {
  test('start() creates the Indexed Job owned by the coordinator pod, then the token Secret and headless Service owned by the Job; stop() deletes the Job and the rest goes with it', async () => {
    const api = await fakeApi({ pods: 'running' });
    const backend = backendFor(api, { gpusPerPod: 1 });
    const ctx = launch();
    await backend.start(ctx);

    const secret = created(api, 'secrets');
    const service = created(api, 'services');
    const job = created(api, 'jobs');
    expect(api.calls.filter((c) => c.verb === 'create').map((c) => c.resource)).toEqual(['jobs', 'secrets', 'services']);
    expect(job.metadata.ownerReferences).toEqual([{ apiVersion: 'v1', kind: 'Pod', name: COORDINATOR_POD.name, uid: COORDINATOR_POD.uid, controller: false, blockOwnerDeletion: false }]);
    const jobUid = api.objects('jobs')[0]!.metadata.uid;
    for (const o of [secret, service]) {
      expect(o.metadata.ownerReferences).toEqual([{ apiVersion: 'batch/v1', kind: 'Job', name: job.metadata.name, uid: jobUid, controller: false, blockOwnerDeletion: false }]);
    }
    for (const o of [secret, service, job]) expect(o.metadata.labels).toMatchObject({ [LABELS.runId]: ctx.runId, [LABELS.account]: ctx.account, [LABELS.component]: 'worker' });
    expect(Buffer.from(secret.data.token, 'base64').toString()).toBe(ctx.token);
    expect(JSON.stringify(job)).not.toContain(ctx.token);

    expect(service.spec.clusterIP).toBe('None');
    expect(service.spec.selector).toEqual({ [LABELS.launch]: job.metadata.labels[LABELS.launch] });
    expect(job.spec.template.spec.subdomain).toBe(service.metadata.name);

    expect(job.spec).toMatchObject({ completionMode: 'Indexed', completions: 3, parallelism: 3, backoffLimitPerIndex: 2 });
    expect(job.spec.podFailurePolicy.rules[0]).toEqual({ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] });
    const container = job.spec.template.spec.containers[0];
    expect(container.resources.limits['nvidia.com/gpu']).toBe('1');
    expect(container.resources.requests['nvidia.com/gpu']).toBe('1');
    const env = Object.fromEntries(container.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
    expect(env.NEXTBUY_COORDINATOR).toBe('10.1.2.3:7070');
    expect(env.NEXTBUY_RUN_ID).toBe(ctx.runId);
    expect(env.NEXTBUY_ACCOUNT).toBe(ctx.account);
    expect(env.NEXTBUY_TOKEN).toEqual({ secretKeyRef: { name: secret.metadata.name, key: 'token' } });

    // The fake Job controller made one pod per index, selected by the launch label.
    expect(api.objects('pods')).toHaveLength(3);
    await backend.stop();
    await backend.stop();
    for (const resource of ['jobs', 'services', 'secrets', 'pods']) expect(api.objects(resource), resource).toEqual([]);
    const jobDelete = api.calls.find((c) => c.verb === 'delete' && c.resource === 'jobs')!;
    expect(jobDelete.query.propagationPolicy ?? (jobDelete.body as any)?.propagationPolicy).toBe('Background');
    // The Job only: its Secret and Service go with it (the coordinator may delete no Secret).
    expect(api.calls.filter((c) => c.verb === 'delete').map((c) => c.resource)).toEqual(['jobs']);
  });

  test('what the launcher sends validates against the Kubernetes schemas (CPU and GPU shapes)', async () => {
    for (const o of [{}, { gpusPerPod: 1, nodeSelector: { 'nvidia.com/gpu.present': 'true' }, tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }], imagePullSecrets: ['regcred'] }]) {
      const api = await fakeApi();
      const backend = backendFor(api, o);
      await backend.start(launch({ workers: 2 }));
      const bodies = api.calls.filter((c) => c.verb === 'create').map((c) => c.body as any);
      expect(bodies.map((b) => b.kind)).toEqual(['Job', 'Secret', 'Service']);
      for (const b of bodies) expect(validateObject(b)).toEqual([]);
      await backend.stop();
    }
  });

  test('the Role in k8s/base/rbac.yaml grants exactly the verbs the launcher calls against the API server, no more, no fewer', async () => {
    // A run's whole life: start (a retried start meets its own objects: 409), poll pending pods, stop.
    const api = await fakeApi({ pods: 'pending' });
    const ctx = launch();
    await backendFor(api).start(ctx);
    const backend = backendFor(api);
    await backend.start(ctx);
    await api.waitForCalls(podLists, 2);
    await backend.stop();
    const role = loadYamlFile('k8s/base/rbac.yaml').find((o) => o.kind === 'Role')!;
    // group/resource/verb, for each rule; resourceNames-limited rules would show as group/resource/verb#name.
    const granted = role.rules.flatMap((r: any) =>
      r.apiGroups.flatMap((g: string) => r.resources.flatMap((res: string) => r.verbs.flatMap((v: string) => (r.resourceNames ?? ['']).map((n: string) => `${g}/${res}/${v}${n ? `#${n}` : ''}`)))),
    );
    const used = [...new Set(api.calls.map((c) => `${c.group}/${c.resource}/${c.verb}`))];
    // Beyond the launcher's calls, only the run Lease's verbs (the pipeline takes it; test/k8s-run-lease.test.ts).
    const leaseVerbs = ['create', 'get', 'update', 'delete'].map((v) => `coordination.k8s.io/leases/${v}`);
    expect([...new Set(granted)].sort()).toEqual([...used, ...leaseVerbs].sort());
    // Secrets: the coordinator creates its run's token Secret and can read, list or delete none.
    expect(granted.filter((g: string) => g.startsWith('/secrets/'))).toEqual(['/secrets/create']);
  });

  test('pods that come up leave failures() pending', async () => {
    const api = await fakeApi({ pods: 'pending' });
    const backend = backendFor(api, { startDeadline: '1h' });
    await backend.start(launch());
    await api.waitForCalls(podLists, 2);
    api.setPods('running');
    const before = api.calls.filter(podLists).length;
    expect(await failureBy(backend, api.waitForCalls(podLists, before + 4))).toBe('pending');
  });

  test('ImagePullBackOff: waits out the start deadline, then names the pod, the reason, the message and what to check', async () => {
    const patient = await fakeApi({ pods: 'image-pull-backoff' });
    const waiting = backendFor(patient, { startDeadline: '1h' });
    await waiting.start(launch());
    expect(await failureBy(waiting, patient.waitForCalls(podLists, 4))).toBe('pending');

    const api = await fakeApi({ pods: 'image-pull-backoff' });
    const backend = backendFor(api, { startDeadline: '0ms', image: 'registry.example.com/nextbuy/worker-gpu:no-such-tag' });
    await backend.start(launch());
    const e = await backend.failures().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ClusterError);
    const message = (e as ClusterError).message;
    expect(api.objects('pods').some((p) => message.includes(`worker pod ${NAMESPACE}/${p.metadata.name} cannot start`))).toBe(true);
    expect(message).toContain('ImagePullBackOff');
    expect(message).toContain('Back-off pulling image "registry.example.com/nextbuy/worker-gpu:no-such-tag"');
    expect(message).toMatch(/Check that image .* exists/);
    expect(message).toContain('kubectl -n nextbuy-test describe pod');
  });

  test('no free nvidia.com/gpu: Unschedulable past the deadline says to check GPU capacity, tolerations and quota', async () => {
    const api = await fakeApi({ pods: 'unschedulable-gpu' });
    const backend = backendFor(api, { startDeadline: '0ms', gpusPerPod: 1 });
    await backend.start(launch());
    const e = (await backend.failures().catch((x: unknown) => x)) as ClusterError;
    expect(e).toBeInstanceOf(ClusterError);
    expect(e.message).toContain('Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu');
    expect(e.message).toMatch(/free nvidia\.com\/gpu.*tolerations and nodeSelector.*quota/);
  });

  test('InvalidImageName fails at once, without waiting for the deadline', async () => {
    const api = await fakeApi({ pods: 'invalid-image' });
    const backend = backendFor(api, { startDeadline: '1h', image: 'Registry/UPPER:case' });
    await backend.start(launch());
    const e = (await backend.failures().catch((x: unknown) => x)) as ClusterError;
    expect(e).toBeInstanceOf(ClusterError);
    expect(e.message).toContain('InvalidImageName');
    expect(e.message).not.toContain('start deadline');
  });

  test('a worker Job that failed (every index gave up) fails the run with the Job reason and where to look', async () => {
    const api = await fakeApi({ pods: 'running' });
    const backend = backendFor(api);
    await backend.start(launch());
    const jobName = created(api, 'jobs').metadata.name;
    api.setJobCondition(jobName, { type: 'Failed', reason: 'FailedIndexes', message: 'Job has failed indexes' });
    const e = (await backend.failures().catch((x: unknown) => x)) as ClusterError;
    expect(e.message).toContain(`worker Job ${NAMESPACE}/${jobName} failed: FailedIndexes: Job has failed indexes`);
    expect(e.message).toContain('kubectl -n nextbuy-test logs -l nextbuy.dev/launch=');
  });

  test('without RBAC for jobs, start() says which Role to apply and leaves nothing behind', async () => {
    const api = await fakeApi({ forbid: ['create jobs'] });
    const backend = backendFor(api);
    const e = (await backend.start(launch()).catch((x: unknown) => x)) as ClusterError;
    expect(e).toBeInstanceOf(ClusterError);
    expect(e.message).toContain('HTTP 403');
    expect(e.message).toContain('cannot create resource "jobs"');
    expect(e.message).toContain('k8s/base/rbac.yaml (Role nextbuy-coordinator)');
    for (const resource of ['jobs', 'services', 'secrets']) expect(api.objects(resource), resource).toEqual([]);
  });

  test('stop() is fine when someone already deleted the objects, and when called again', async () => {
    const api = await fakeApi();
    const backend = backendFor(api);
    await backend.start(launch());
    api.remove('jobs', created(api, 'jobs').metadata.name);
    await backend.stop();
    await backend.stop();
    expect(api.calls.filter((c) => c.verb === 'delete').map((c) => c.status)).toEqual([404]);
  });

  test('without the coordinator pod identity (downward API), start() refuses before touching the API', async () => {
    const api = await fakeApi();
    const backend = createK8sBackend({ image: 'w:1', apiServer: api.url, namespace: NAMESPACE, processEnv: {}, logger: quiet });
    cleanups.push(() => backend.stop());
    const e = (await backend.start(launch()).catch((x: unknown) => x)) as ClusterError;
    expect(e).toBeInstanceOf(ClusterError);
    expect(e.message).toMatch(/POD_NAME and POD_UID/);
    expect(api.calls).toEqual([]);
  });

  test('a kubeconfig file (KUBECONFIG) and the downward-API env are enough to launch', async () => {
    const api = await fakeApi();
    const dir = mkdtempSync(path.join(tmpdir(), 'nextbuy-kube-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, 'config'), api.kubeconfigText('from-kubeconfig'));
    const kc = new KubeConfig();
    kc.loadFromFile(path.join(dir, 'config'));
    const backend = createK8sBackend({
      image: 'w:1',
      kubeConfig: kc,
      processEnv: { POD_NAME: 'coord-1', POD_UID: 'uid-1', POD_IP: '10.9.8.7' },
      logger: quiet,
    });
    cleanups.push(() => backend.stop());
    await backend.start(launch({ coordinatorAddress: '127.0.0.1:7070' }));
    const job = created(api, 'jobs');
    expect(api.calls[0]!.namespace).toBe('from-kubeconfig');
    expect(job.metadata.ownerReferences[0]).toMatchObject({ name: 'coord-1', uid: 'uid-1' });
    expect(job.spec.template.spec.containers[0].env.find((e: any) => e.name === 'NEXTBUY_COORDINATOR').value).toBe('10.9.8.7:7070');
    await backend.stop();
  });

  test('with no kubeconfig and no in-cluster service account, start() says how --env k8s is meant to run', async () => {
    const saved = { KUBECONFIG: process.env.KUBECONFIG, HOME: process.env.HOME };
    const home = mkdtempSync(path.join(tmpdir(), 'nextbuy-home-'));
    cleanups.push(async () => {
      Object.assign(process.env, saved);
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
      rmSync(home, { recursive: true, force: true });
    });
    delete process.env.KUBECONFIG;
    process.env.HOME = home;
    const backend = createK8sBackend({ image: 'w:1', coordinatorPod: COORDINATOR_POD, coordinatorHost: '10.0.0.1', logger: quiet });
    cleanups.push(() => backend.stop());
    const e = (await backend.start(launch()).catch((x: unknown) => x)) as ClusterError;
    expect(e).toBeInstanceOf(ClusterError);
    expect(e.message).toMatch(/no Kubernetes configuration found.*KUBECONFIG/);
  });

  test('pods run as real processes get the env the launcher gave them, and die when the Job is deleted', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nextbuy-pods-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    // A stand-in worker: records its env and argv, then waits to be stopped.
    const script = `
      const fs = require('node:fs');
      const keys = ['NEXTBUY_COORDINATOR','NEXTBUY_RUN_ID','NEXTBUY_ACCOUNT','NEXTBUY_TOKEN','NEXTBUY_WORKER_NAME','NEXTBUY_ADVERTISE_HOST','NEXTBUY_WORKER_PORT','NEXTBUY_METRICS_PORT','JOB_COMPLETION_INDEX'];
      const env = Object.fromEntries(keys.map((k) => [k, process.env[k]]));
      fs.writeFileSync(process.argv[1] + '/pod-' + process.env.JOB_COMPLETION_INDEX + '.json', JSON.stringify({ env, podArgv: JSON.parse(process.argv[2]) }));
      setInterval(() => {}, 1000);
    `;
    const api = await fakeApi({ pods: 'processes', argv: (podArgv) => [process.execPath, '-e', script, dir, JSON.stringify(podArgv)] });
    const backend = backendFor(api, { startDeadline: '1h' });
    const ctx = launch({ workers: 2 });
    await backend.start(ctx);
    const files = [0, 1].map((i) => path.join(dir, `pod-${i}.json`));
    while (!files.every((f) => existsSync(f))) await new Promise((r) => setTimeout(r, 20));
    const pods = files.map((f) => JSON.parse(readFileSync(f, 'utf8')));
    pods.forEach((p, i) => {
      expect(p.env).toMatchObject({
        NEXTBUY_COORDINATOR: '10.1.2.3:7070',
        NEXTBUY_RUN_ID: ctx.runId,
        NEXTBUY_ACCOUNT: ctx.account,
        NEXTBUY_TOKEN: ctx.token,
        NEXTBUY_ADVERTISE_HOST: '127.0.0.1',
        NEXTBUY_WORKER_PORT: '7071',
        JOB_COMPLETION_INDEX: String(i),
      });
      expect(p.env.NEXTBUY_WORKER_NAME).toMatch(new RegExp(`^${created(api, 'jobs').metadata.name}-${i}-`));
      expect(p.podArgv).toEqual(['node', 'dist/worker/main.js', '--host', '0.0.0.0', '--port', '7071']);
    });
    expect(api.liveProcesses()).toBe(2);
    await backend.stop();
    expect(api.liveProcesses()).toBe(0);
  });

  test('workers.yaml errors name the file and the field', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nextbuy-workers-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const cases: [string, RegExp][] = [
      ['gpusPerPod: 1\n', /workers\.yaml: image is required/],
      ['image: w:1\ngpus: 1\n', /workers\.yaml: gpus is not a known field; use one of image, gpusPerPod/],
      ['image: w:1\nresources: { limits: { nvidia.com/gpu: 1 } }\n', /resources\.limits must not set nvidia\.com\/gpu: use gpusPerPod/],
      ['image: w:1\nstartDeadline: soon\n', /startDeadline must be a duration like '10m', got "soon"/],
      ['image: w:1\ntolerations: [{ key: a, effects: NoSchedule }]\n', /tolerations\[0\]\.effects is not a toleration field/],
    ];
    for (const [text, expected] of cases) {
      const file = path.join(dir, 'workers.yaml');
      writeFileSync(file, text);
      const e = await loadK8sBackendOptions(file, {}).catch((x: unknown) => x);
      expect(e, text).toBeInstanceOf(JobFileError);
      expect((e as Error).message).toMatch(expected);
    }
    const missing = await loadK8sBackendOptions(undefined, { NEXTBUY_WORKERS_CONF: path.join(dir, 'nope.yaml') }).catch((x: unknown) => x);
    expect((missing as Error).message).toMatch(/nope\.yaml: \(file\) cannot be read \(ENOENT\)/);
  });
});
