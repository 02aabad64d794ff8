/**
 * `nextbuy run --env k8s` end to end against a Kubernetes API server stand-in: the CLI's launcher creates
 * the worker Job, the stand-in's "pods" are real worker processes started with the env the Job carries,
 * they register, train and score, and the launcher deletes everything at the end. No real cluster runs
 * here: what this cannot show is a real scheduler, image pulls and the garbage collector.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { WORKER_ARGV } from '../coordinator/cluster/k8s/index.js';
import { startFakeKubeApi, type FakeKubeApi } from './helpers/fake-kube-api.js';
import { ROOT, runCli, taobaoJob } from './helpers/cli.js';

let api: FakeKubeApi | null = null;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
afterAll(async () => api?.close());

test('run --env k8s creates, watches and cleans up the worker Job', async () => {
  api = await startFakeKubeApi({
    pods: 'processes',
    cwd: ROOT,
    // The pod's command (the compiled worker, WORKER_ARGV) made to run on this machine from source:
    // loopback, any free port, and each pod's probes on a free port too.
    argv: (podArgv) => {
      expect(podArgv.slice(0, WORKER_ARGV.length)).toEqual(WORKER_ARGV);
      return [process.execPath, '--import', 'tsx', 'worker/main.ts', '--host', '127.0.0.1', '--port', '0'];
    },
    podEnv: () => ({ NEXTBUY_METRICS_PORT: '0' }),
  });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-k8s-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  await writeFile(kubeconfig, api.kubeconfigText('nextbuy'));
  const workersConf = path.join(dir, 'workers.yaml');
  // The coordinator listens for registrations on workers.yaml's fixed port (a free one here, 7070 in pods).
  const registrationPort = await freePort();
  await writeFile(workersConf, `image: registry.example.com/nextbuy-worker-cpu:test\nstartDeadline: 2m\nregistrationPort: ${registrationPort}\n`);
  const { conf } = await taobaoJob({
    products: { overall: true, topCategories: 0 },
    model: { architectures: ['lstm'], epochs: 1, embeddingDim: 4, hiddenUnits: 4, denseUnits: 4, batchSize: 256 },
    shards: { count: 2 },
    cluster: { workers: 2 },
  });
  const r = await runCli(['run', '--account', 'taobao', '--date', '2017-12-02', '--env', 'k8s', '--conf', conf], {
    env: { KUBECONFIG: kubeconfig, NEXTBUY_WORKERS_CONF: workersConf, POD_NAME: 'nextbuy-nightly-123-x', POD_UID: 'uid-123', POD_IP: '127.0.0.1', POD_NAMESPACE: 'nextbuy' },
  });
  expect(r.stderr).not.toMatch(/internal error/);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/published {3}1 partitions, 814 predictions/);
  const created = api.calls.filter((c) => c.verb === 'create').map((c) => c.resource);
  expect(created).toEqual(expect.arrayContaining(['secrets', 'services', 'jobs']));
  const job = api.calls.find((c) => c.verb === 'create' && c.resource === 'jobs')!.body as {
    metadata: { ownerReferences: { name: string; uid: string }[] };
    spec: { completions: number; completionMode: string; template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
  };
  expect(job.spec.template.spec.containers[0]!.env.find((e) => e.name === 'NEXTBUY_COORDINATOR')?.value).toBe(`127.0.0.1:${registrationPort}`);
  expect(job.metadata.ownerReferences[0]).toMatchObject({ name: 'nextbuy-nightly-123-x', uid: 'uid-123' });
  expect(job.spec).toMatchObject({ completions: 2, completionMode: 'Indexed' });
  // The Job only: its Secret and Service are owned by it and go with it.
  expect(api.calls.filter((c) => c.verb === 'delete' && c.resource !== 'leases').map((c) => c.resource)).toEqual(['jobs']);
  // The date's run Lease was taken before anything else and released at the end.
  const leaseCalls = api.calls.filter((c) => c.resource === 'leases');
  expect(leaseCalls[0]).toMatchObject({ verb: 'create', status: 201, group: 'coordination.k8s.io' });
  expect(api.calls.findIndex((c) => c.resource === 'leases')).toBeLessThan(api.calls.findIndex((c) => c.resource === 'jobs'));
  expect(leaseCalls.at(-1)).toMatchObject({ verb: 'delete', status: 200 });
  for (const resource of ['jobs', 'services', 'secrets', 'pods', 'leases']) expect(api.objects(resource), resource).toEqual([]);
  expect(api.liveProcesses()).toBe(0);
}, 180_000);
