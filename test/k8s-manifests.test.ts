/**
 * k8s/: every manifest of the base and of each overlay, built with the kustomize subset in
 * test/helpers/k8s-manifests.ts, validated against the Kubernetes schemas; and the promises the
 * manifests make (safe nightly schedule, RBAC, config that the real loaders accept, worker Jobs the
 * launcher would build from each overlay) checked against the code that reads them.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { buildWorkerObjects, compileK8sBackendOptions, NEXTBUY_UID, parseWorkersYaml } from '../coordinator/cluster/k8s/index.js';
import { parseCommandLine } from '../jobs/args.js';
import { compileJob } from '../jobs/job-file.js';
import { kustomizeBuild, loadYamlFile, podSpecs, quantity, validateObject, type KubeObject } from './helpers/k8s-manifests.js';

const BUILDS = { base: 'k8s/base', dev: 'k8s/overlays/dev', prod: 'k8s/overlays/prod' } as const;
const OVERLAYS = ['dev', 'prod'] as const;
/** Created out of band (credentials never live in git); documented in k8s/base/cronjob.yaml. */
const EXTERNAL_SECRETS = ['nextbuy-object-store'];
/** Created by hand per backfill (kubectl create -f), never by an overlay. */
const BACKFILL_JOB = 'k8s/backfill/job.yaml';

const built = Object.fromEntries(Object.entries(BUILDS).map(([k, dir]) => [k, kustomizeBuild(dir)])) as Record<keyof typeof BUILDS, KubeObject[]>;
const one = (objects: KubeObject[], kind: string, name?: string) => {
  const found = objects.filter((o) => o.kind === kind && (!name || o.metadata.name === name));
  expect(found, `${kind}/${name ?? '*'}`).toHaveLength(1);
  return found[0]!;
};

function yamlFilesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? yamlFilesUnder(p) : /\.ya?ml$/.test(f) ? [p] : [];
  });
}

describe('manifests', () => {
  test.each(Object.keys(BUILDS))('%s: every object is valid against the Kubernetes schemas, with no unknown fields', (build) => {
    const objects = built[build as keyof typeof BUILDS];
    expect(objects.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'CronJob', 'PersistentVolumeClaim', 'Role', 'RoleBinding', 'ServiceAccount']);
    for (const o of objects) expect(validateObject(o), `${o.kind}/${o.metadata.name}`).toEqual([]);
  });

  test('every YAML file under k8s/ is used by a kustomization (nothing stale lies around)', () => {
    const used = new Set<string>();
    for (const dir of Object.values(BUILDS)) {
      const k = loadYamlFile(path.join(dir, 'kustomization.yaml'))[0] as any;
      used.add(path.join(dir, 'kustomization.yaml'));
      for (const r of k.resources ?? []) used.add(path.join(dir, r));
      for (const p of k.patches ?? []) used.add(path.join(dir, p.path));
    }
    used.add(BACKFILL_JOB);
    expect(yamlFilesUnder('k8s').filter((f) => !used.has(f))).toEqual([]);
  });

  test('overlays set their namespace everywhere, including the RoleBinding subject', () => {
    for (const overlay of OVERLAYS) {
      const objects = built[overlay];
      const ns = objects[0]!.metadata.namespace;
      expect(ns).toMatch(/^nextbuy/);
      for (const o of objects) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(ns);
      expect(one(objects, 'RoleBinding').subjects[0].namespace).toBe(ns);
    }
    for (const o of built.base) expect(o.metadata.namespace).toBeUndefined();
  });
});

describe('the nightly CronJob', () => {
  test.each(Object.keys(BUILDS))('%s: a double start or a skipped night is safe, and retries stay on the same UTC day', (build) => {
    const cron = one(built[build as keyof typeof BUILDS], 'CronJob', 'nextbuy-nightly');
    expect(cron.spec.concurrencyPolicy).toBe('Forbid');
    expect(cron.spec.startingDeadlineSeconds).toBeGreaterThan(0);
    expect(cron.spec.successfulJobsHistoryLimit).toBeGreaterThanOrEqual(1);
    expect(cron.spec.failedJobsHistoryLimit).toBeGreaterThanOrEqual(1);
    expect(cron.spec.timeZone).toBe('Etc/UTC');
    const [minute, hour] = String(cron.spec.schedule).split(/\s+/).map(Number);
    const job = cron.spec.jobTemplate.spec;
    // `--date today` is read when a pod starts: the latest possible start must still be the same UTC day.
    const latestStartS = hour! * 3600 + minute! * 60 + cron.spec.startingDeadlineSeconds + job.activeDeadlineSeconds;
    expect(latestStartS).toBeLessThan(86_400);
    expect(job.template.spec.restartPolicy).toBe('Never');
    expect(job.podFailurePolicy.rules).toContainEqual({ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] });
  });

  test.each(Object.keys(BUILDS))('%s: the command line is one the CLI accepts, with the account from the ConfigMap and the mounted job file', (build) => {
    const objects = built[build as keyof typeof BUILDS];
    const cron = one(objects, 'CronJob', 'nextbuy-nightly');
    const config = one(objects, 'ConfigMap', 'nextbuy-config');
    const spec = podSpecs(cron)[0];
    const c = spec.containers[0];
    expect(c.args.slice(0, 2)).toEqual(['node', 'bin/nextbuy.js']);
    const accountEnv = c.env.find((e: any) => e.name === 'ACCOUNT');
    expect(accountEnv.valueFrom.configMapKeyRef).toEqual({ name: 'nextbuy-config', key: 'account' });
    const argv = c.args.slice(2).map((a: string) => a.replace('$(ACCOUNT)', config.data.account));
    const parsed = parseCommandLine(argv, new Date(Date.UTC(2024, 4, 11, 2, 30)));
    expect(parsed.help).toBe(false);
    if (parsed.help) return;
    expect(parsed.args).toMatchObject({ task: 'run', account: config.data.account, env: 'k8s' });
    const mount = c.volumeMounts.find((m: any) => parsed.args.conf.startsWith(`${m.mountPath}/`));
    const volume = spec.volumes.find((v: any) => v.name === mount.name);
    expect(volume.configMap.name).toBe('nextbuy-config');
    expect(volume.configMap.items.map((i: any) => i.path)).toContain(path.basename(parsed.args.conf));
    const workersConf = c.env.find((e: any) => e.name === 'NEXTBUY_WORKERS_CONF').value;
    expect(volume.configMap.items.map((i: any) => `${mount.mountPath}/${i.path}`)).toContain(workersConf);
  });

  test.each(Object.keys(BUILDS))('%s: the pod runs non-root with the downward API the launcher needs, and refers only to objects that exist', (build) => {
    const objects = built[build as keyof typeof BUILDS];
    const cron = one(objects, 'CronJob', 'nextbuy-nightly');
    const spec = podSpecs(cron)[0];
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: NEXTBUY_UID });
    expect(one(objects, 'ServiceAccount', spec.serviceAccountName)).toBeTruthy();
    const c = spec.containers[0];
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    const fields = Object.fromEntries(c.env.filter((e: any) => e.valueFrom?.fieldRef).map((e: any) => [e.name, e.valueFrom.fieldRef.fieldPath]));
    expect(fields).toMatchObject({ POD_NAME: 'metadata.name', POD_UID: 'metadata.uid', POD_NAMESPACE: 'metadata.namespace', POD_IP: 'status.podIP' });
    expect(c.livenessProbe.httpGet).toMatchObject({ path: '/healthz', port: 'metrics' });
    expect(c.ports.map((p: any) => p.name)).toContain('metrics');
    const config = one(objects, 'ConfigMap', 'nextbuy-config');
    for (const v of spec.volumes) {
      if (v.configMap) for (const item of v.configMap.items) expect(config.data[item.key], item.key).toBeDefined();
      if (v.persistentVolumeClaim) expect(one(objects, 'PersistentVolumeClaim', v.persistentVolumeClaim.claimName)).toBeTruthy();
    }
    for (const e of c.envFrom ?? []) if (e.secretRef) expect(EXTERNAL_SECRETS).toContain(e.secretRef.name);
    // Resources: requests and limits, memory limit set (a night that leaks must not take the node).
    expect(c.resources.requests.cpu).toBeDefined();
    expect(quantity(c.resources.limits.memory)).toBeGreaterThanOrEqual(quantity(c.resources.requests.memory));
  });

  test('dev runs the sample night on demand with CPU resources; prod is scheduled with a pinned image', () => {
    const dev = podSpecs(one(built.dev, 'CronJob'))[0].containers[0];
    const prod = podSpecs(one(built.prod, 'CronJob'))[0].containers[0];
    expect(one(built.dev, 'CronJob').spec.suspend).toBe(true);
    expect(dev.args).toContain('2017-12-02');
    expect(dev.image).toBe('localhost:5001/nextbuy-coordinator:dev');
    expect(dev.env.find((e: any) => e.name === 'NEXTBUY_LOG').value).toBe('debug');
    expect(dev.env.find((e: any) => e.name === 'POD_UID')).toBeDefined(); // the patch merged env by name, it did not replace it
    expect(one(built.prod, 'CronJob').spec.suspend).toBeUndefined();
    expect(prod.image).toMatch(/^registry\.example\.com\/nextbuy\/coordinator:\d+\.\d+\.\d+$/);
    expect(quantity(prod.resources.limits.memory)).toBeGreaterThan(quantity(dev.resources.limits.memory));
  });
});

describe('the backfill Job', () => {
  test('is valid, runs a backfill the CLI accepts, and its pod is the nightly pod with other args', () => {
    const [job] = loadYamlFile(BACKFILL_JOB);
    expect(validateObject(job!)).toEqual([]);
    expect(job!.metadata.generateName).toBe('nextbuy-backfill-');
    const c = podSpecs(job!)[0].containers[0];
    const env = Object.fromEntries(c.env.filter((e: any) => e.value !== undefined).map((e: any) => [e.name, e.value]));
    const account = one(built.base, 'ConfigMap', 'nextbuy-config').data.account;
    const argv = c.args.slice(2).map((a: string) => a.replace(/\$\((\w+)\)/g, (_: string, k: string) => (k === 'ACCOUNT' ? account : env[k])));
    const parsed = parseCommandLine(argv);
    expect(parsed.help).toBe(false);
    if (!parsed.help) expect(parsed.args).toMatchObject({ task: 'backfill', from: env.FROM, to: env.TO, env: 'k8s', parallel: 1 });

    // Same pod as the nightly run, except the command line and the range.
    const strip = (spec: any) => {
      const copy = structuredClone(spec);
      delete copy.containers[0].args;
      copy.containers[0].env = copy.containers[0].env.filter((e: any) => !['FROM', 'TO'].includes(e.name));
      return copy;
    };
    const nightly = one(built.base, 'CronJob', 'nextbuy-nightly');
    expect(strip(podSpecs(job!)[0])).toEqual(strip(podSpecs(nightly)[0]));
    expect(job!.spec.podFailurePolicy).toEqual(nightly.spec.jobTemplate.spec.podFailurePolicy);
  });
});

describe('RBAC', () => {
  test("the coordinator's Role is exactly the launcher's needs, in its own namespace, bound to its ServiceAccount", () => {
    const objects = built.base;
    const role = one(objects, 'Role', 'nextbuy-coordinator');
    const rules = role.rules.map((r: any) => `${r.apiGroups.join(',')}|${r.resources.join(',')}|${[...r.verbs].sort().join(',')}`).sort();
    expect(rules).toEqual(
      [
        'batch|jobs|create,delete,get,list,watch', '|pods|get,list,watch', '|services|create,delete', '|secrets|create,delete',
        'coordination.k8s.io|leases|create,delete,get,update',
      ].sort(),
    );
    expect(objects.some((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding')).toBe(false);
    const binding = one(objects, 'RoleBinding');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: one(objects, 'ServiceAccount').metadata.name }]);
  });
});

describe('configuration', () => {
  test.each(Object.keys(BUILDS))("%s: job.yaml compiles with the real job loader, names the ConfigMap's account, and fits the pod", (build) => {
    const objects = built[build as keyof typeof BUILDS];
    const config = one(objects, 'ConfigMap', 'nextbuy-config');
    const job = compileJob(parseYaml(config.data['job.yaml']), '/etc/nextbuy/job.yaml');
    expect(job.account).toBe(config.data.account);
    const spec = podSpecs(one(objects, 'CronJob'))[0];
    const c = spec.containers[0];
    const writable = c.volumeMounts.filter((m: any) => !m.readOnly).map((m: any) => m.mountPath);
    expect(writable.some((m: string) => job.output.dir.startsWith(`${m}/`)), `output ${job.output.dir} on a writable volume`).toBe(true);
    const inputRoots = [...c.volumeMounts.map((m: any) => m.mountPath), '/app/examples'];
    expect(inputRoots.some((m: string) => job.input.path.startsWith(`${m}/`)), `input ${job.input.path}`).toBe(true);
    // DuckDB's memory_limit must leave room in the container for Node and Arrow buffers.
    expect(quantity(job.resources.memoryLimit)).toBeLessThan(quantity(c.resources.limits.memory) * 0.8);
  });

  test.each(Object.keys(BUILDS))('%s: workers.yaml builds a worker Job that validates, with the GPU shape the overlay promises', (build) => {
    const config = one(built[build as keyof typeof BUILDS], 'ConfigMap', 'nextbuy-config');
    const options = parseWorkersYaml(parseYaml(config.data['workers.yaml']), 'workers.yaml');
    const compiled = compileK8sBackendOptions({ ...options, processEnv: { POD_NAME: 'nextbuy-nightly-1-abcde', POD_UID: 'uid-1', POD_IP: '10.0.0.5' } });
    const job = compileJob(parseYaml(config.data['job.yaml']), '/etc/nextbuy/job.yaml');
    const objects = buildWorkerObjects(compiled, { coordinatorAddress: '0.0.0.0:7070', runId: `${job.account}-2024-05-11`, account: job.account, token: 't', workers: job.cluster.workers }, 'ns');
    for (const o of [objects.secret, objects.service, objects.job]) expect(validateObject(o as KubeObject)).toEqual([]);
    const pod = objects.job.spec!.template.spec!;
    const limits = pod.containers[0]!.resources!.limits!;
    if (build === 'prod') {
      expect(limits['nvidia.com/gpu']).toBe('1');
      expect(pod.tolerations).toContainEqual({ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' });
      expect(pod.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
      expect(pod.containers[0]!.image).toMatch(/worker-gpu/);
    } else {
      expect(limits['nvidia.com/gpu']).toBeUndefined();
      expect(pod.containers[0]!.image).toMatch(/worker-cpu/);
    }
    expect(objects.job.spec!.completions).toBe(job.cluster.workers);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: NEXTBUY_UID });
  });
});
