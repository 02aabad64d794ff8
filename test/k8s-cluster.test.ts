/**
 * The Kubernetes backend inside a real run's cluster: the coordinator's registration server, the
 * launcher talking to the fake API server, and worker "pods" that are real `worker/main.ts` processes
 * (echo engine) started by the fake Job controller with the env the launcher put in the Job.
 */
import { afterEach, expect, test } from 'vitest';
import { startCluster } from '../coordinator/cluster/index.js';
import { createK8sBackend, WORKER_ARGV } from '../coordinator/cluster/k8s/index.js';
import { ClusterError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { startFakeKubeApi, type FakeKubeApi } from './helpers/fake-kube-api.js';

const quiet = createLogger({ stream: { write: () => true }, level: 'error' });
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => {});
});

/** The pod's command line, made to run here: echo engine, loopback, any free port. */
function asLocalWorker(podArgv: string[]): string[] {
  // The image runs the compiled worker (WORKER_ARGV); here the same source runs through tsx.
  expect(podArgv.slice(0, WORKER_ARGV.length)).toEqual(WORKER_ARGV);
  return [process.execPath, '--import', 'tsx', 'worker/main.ts', '--engine', 'echo', '--host', '127.0.0.1', '--port', '0'];
}

async function fakeApi(pods: 'processes' | 'image-pull-backoff'): Promise<FakeKubeApi> {
  // Every "pod" is a process on this machine: each serves its probes on a free port, not the pods' fixed one.
  const api = await startFakeKubeApi({ pods, argv: asLocalWorker, cwd: process.cwd(), podEnv: () => ({ NEXTBUY_METRICS_PORT: '0' }) });
  cleanups.push(() => api.close());
  return api;
}

test('workers launched as an Indexed Job register with the coordinator; stopping the cluster drains them and deletes the Job, Service and Secret', async () => {
  const api = await fakeApi('processes');
  const backend = createK8sBackend({
    image: 'nextbuy-worker-cpu:test',
    apiServer: api.url,
    namespace: 'nextbuy-test',
    coordinatorPod: { name: 'nextbuy-nightly-1-abcde', uid: 'uid-coordinator' },
    coordinatorHost: '127.0.0.1',
    pollEvery: '20ms',
    pollMax: '200ms',
    logger: quiet,
  });
  const cluster = await startCluster({
    backend,
    runId: 'taobao-2017-12-02-k8s',
    account: 'taobao',
    workers: 2,
    minWorkers: 2,
    heartbeatTimeoutMs: 30_000,
    listenHost: '127.0.0.1',
    startTimeoutMs: 90_000,
  });
  cleanups.push(() => cluster.stop());
  expect(cluster.pool.workers()).toHaveLength(2);
  expect(api.objects('jobs')).toHaveLength(1);
  expect(api.liveProcesses()).toBe(2);

  await cluster.stop();
  for (const resource of ['jobs', 'services', 'secrets', 'pods']) expect(api.objects(resource), resource).toEqual([]);
  expect(api.liveProcesses()).toBe(0);
});

test('pods that cannot pull their image fail the cluster start with the launcher\'s error, and nothing is left behind', async () => {
  const api = await fakeApi('image-pull-backoff');
  const backend = createK8sBackend({
    image: 'nextbuy-worker-cpu:missing',
    apiServer: api.url,
    namespace: 'nextbuy-test',
    coordinatorPod: { name: 'nextbuy-nightly-1-abcde', uid: 'uid-coordinator' },
    coordinatorHost: '127.0.0.1',
    startDeadline: '0ms',
    pollEvery: '10ms',
    logger: quiet,
  });
  const e = await startCluster({
    backend,
    runId: 'taobao-2017-12-02-k8s',
    account: 'taobao',
    workers: 2,
    heartbeatTimeoutMs: 30_000,
    listenHost: '127.0.0.1',
    startTimeoutMs: 90_000,
  }).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(ClusterError);
  expect((e as Error).message).toContain('ImagePullBackOff');
  for (const resource of ['jobs', 'services', 'secrets', 'pods']) expect(api.objects(resource), resource).toEqual([]);
});
