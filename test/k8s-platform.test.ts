/**
 * What a platform team checks before accepting k8s/ (issue #19): real `kubectl kustomize` renders every
 * overlay; every object, the launcher's included, validates against the schemas and uses no field newer
 * than the documented minimum Kubernetes; prod runs mutual TLS; the NetworkPolicies select the pods that
 * really exist and name ports they really have; sizing agrees with the job file; images are pinned.
 * (The Role's verbs are checked against the launcher's calls in test/k8s-launcher.test.ts.)
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { buildWorkerObjects, compileK8sBackendOptions, parseWorkersYaml, TLS_MOUNT } from '../coordinator/cluster/k8s/index.js';
import { compileJob } from '../jobs/job-file.js';
import {
  kubectlKustomize,
  kubectlVersion,
  kustomizeBuild,
  loadYamlFile,
  MIN_KUBERNETES_MINOR,
  newerFields,
  podSpecs,
  quantity,
  selects,
  validateObject,
  type KubeObject,
} from './helpers/k8s-manifests.js';

const OVERLAYS = { dev: 'k8s/overlays/dev', prod: 'k8s/overlays/prod' } as const;
type Overlay = keyof typeof OVERLAYS;
const BACKFILL_JOB = 'k8s/backfill/job.yaml';
const GiB = 2 ** 30;

const kubectl = kubectlVersion();
if (!kubectl) {
  if (process.env.CI) throw new Error('kubectl is not installed: .ci/run installs it (apt-get install kubectl) before the tests');
  process.stderr.write('test/k8s-platform.test.ts: kubectl is not on PATH here, so the real-kustomize render is skipped (apt-get install -y kubectl)\n');
}

const built = Object.fromEntries(Object.entries(OVERLAYS).map(([k, dir]) => [k, kustomizeBuild(dir)])) as Record<Overlay, KubeObject[]>;
const one = (objects: KubeObject[], kind: string, name?: string) => {
  const found = objects.filter((o) => o.kind === kind && (!name || o.metadata.name === name));
  expect(found, `${kind}/${name ?? '*'}`).toHaveLength(1);
  return found[0]!;
};

/** The worker Job, Service and Secret the launcher would create for this overlay's night (prod: with TLS). */
function launcherObjects(overlay: Overlay) {
  const config = one(built[overlay], 'ConfigMap', 'nextbuy-config');
  const job = compileJob(parseYaml(config.data['job.yaml']), '/etc/nextbuy/job.yaml');
  const options = compileK8sBackendOptions({
    ...parseWorkersYaml(parseYaml(config.data['workers.yaml']), 'workers.yaml'),
    processEnv: { POD_NAME: 'nextbuy-nightly-1-abcde', POD_UID: 'uid-1', POD_IP: '10.0.0.5' },
  });
  const objects = buildWorkerObjects(
    options,
    { coordinatorAddress: `0.0.0.0:${options.registrationPort}`, runId: `${job.account}-2024-05-11`, account: job.account, token: 't', workers: job.cluster.workers, tls: job.security?.tls ?? null },
    'ns',
  );
  return { job, options, objects, all: [objects.job, objects.service, objects.secret] as unknown as KubeObject[] };
}

describe('rendering', () => {
  test.skipIf(!kubectl).each(Object.keys(OVERLAYS))('%s: `kubectl kustomize` renders it, and exactly as the tests\' kustomize subset does', (overlay) => {
    const real = kubectlKustomize(OVERLAYS[overlay as Overlay]);
    const key = (o: KubeObject) => `${o.kind}/${o.metadata.name}`;
    // Strategic merge puts patched list items first in real kustomize: compare named lists as sets.
    const canonical = (v: unknown): unknown => {
      if (Array.isArray(v)) {
        const items = v.map(canonical);
        const k = items.every((x: any) => x && typeof x === 'object' && 'name' in x) ? 'name' : items.every((x: any) => x && typeof x === 'object' && 'mountPath' in x) ? 'mountPath' : null;
        return k ? [...items].sort((a: any, b: any) => String(a[k]).localeCompare(String(b[k]))) : items;
      }
      if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, canonical(x)]));
      return v;
    };
    const byKey = (list: KubeObject[]) => Object.fromEntries(list.map((o) => [key(o), canonical(o)]));
    expect(byKey(real)).toEqual(byKey(built[overlay as Overlay]));
  });

  test.skipIf(!kubectl)('the kubectl here is one the README allows', () => {
    const readme = readFileSync('k8s/README.md', 'utf8');
    const m = /kubectl ≥ 1\.(\d+)/.exec(readme);
    expect(m, 'k8s/README.md names a minimum kubectl').not.toBeNull();
    expect(kubectl!.minor).toBeGreaterThanOrEqual(Number(m![1]));
  });
});

describe(`Kubernetes 1.${MIN_KUBERNETES_MINOR}`, () => {
  test('is the minimum the README documents', () => {
    expect(readFileSync('k8s/README.md', 'utf8')).toContain(`Kubernetes ≥ 1.${MIN_KUBERNETES_MINOR}`);
  });

  test.each(Object.keys(OVERLAYS))('%s: every object, and every object the launcher sends, validates with no unknown field and no field newer than the minimum', (overlay) => {
    const objects = [...built[overlay as Overlay], ...launcherObjects(overlay as Overlay).all, ...loadYamlFile(BACKFILL_JOB)];
    for (const o of objects) {
      expect(validateObject(o), `${o.kind}/${o.metadata.name ?? o.metadata.generateName}`).toEqual([]);
      expect(newerFields(o), `${o.kind}/${o.metadata.name ?? o.metadata.generateName}`).toEqual([]);
    }
  });

  test('the check finds a field the minimum does not have', () => {
    const { objects } = launcherObjects('prod');
    const job = structuredClone(objects.job) as unknown as KubeObject;
    job.spec.managedBy = 'kueue.x-k8s.io/multikueue';
    expect(newerFields(job)).toEqual([expect.stringMatching(/spec\.managedBy: added in 1\.30/)]);
  });
});

describe('secure by default in prod', () => {
  test('the coordinator mounts its certificate where the job file reads it, and the worker pods get theirs', () => {
    const { job, objects } = launcherObjects('prod');
    expect(job.security?.tls).toBeTruthy();
    // The nightly pod (the Secret required) and a backfill run in the prod namespace (the same job file).
    for (const [spec, required] of [[podSpecs(one(built.prod, 'CronJob'))[0], true], [podSpecs(loadYamlFile(BACKFILL_JOB)[0]!)[0], false]] as const) {
      const c = spec.containers[0];
      for (const file of Object.values(job.security!.tls!)) {
        const mount = c.volumeMounts.find((m: any) => file.startsWith(`${m.mountPath}/`));
        expect(mount, file).toBeDefined();
        const volume = spec.volumes.find((v: any) => v.name === mount.name);
        expect(volume.secret.secretName).toBe('nextbuy-coordinator-tls');
        expect(volume.secret.optional).toBe(!required);
        expect(volume.secret.defaultMode).toBe(0o440);
        expect(file.slice(mount.mountPath.length + 1)).toMatch(/^(ca\.crt|tls\.crt|tls\.key)$/);
      }
    }
    const pod = objects.job.spec!.template.spec!;
    const env = Object.fromEntries(pod.containers[0]!.env!.map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ NEXTBUY_TLS_CA: `${TLS_MOUNT}/ca.crt`, NEXTBUY_TLS_CERT: `${TLS_MOUNT}/tls.crt`, NEXTBUY_TLS_KEY: `${TLS_MOUNT}/tls.key` });
    expect(pod.volumes).toContainEqual({ name: 'tls', secret: { secretName: 'nextbuy-worker-tls', defaultMode: 0o440 } });
    // GPU pods score with ONNX Runtime's CUDA provider (test/model-onnx-device.test.ts: the CPU fallback).
    expect(env.NEXTBUY_ONNX_DEVICE).toBe('cuda');
  });

  test("the cert-manager example issues exactly the two Secrets prod mounts, from one CA, each for client and server", () => {
    const docs = loadYamlFile('k8s/certs/cert-manager.yaml');
    const leaves = docs.filter((d) => d.kind === 'Certificate' && !d.spec.isCA);
    expect(leaves.map((d) => d.spec.secretName).sort()).toEqual(['nextbuy-coordinator-tls', 'nextbuy-worker-tls']);
    const ca = docs.find((d) => d.kind === 'Issuer' && d.spec.ca)!;
    for (const leaf of leaves) {
      expect(leaf.spec.issuerRef).toEqual({ name: ca.metadata.name, kind: 'Issuer' });
      expect(leaf.spec.usages).toEqual(expect.arrayContaining(['server auth', 'client auth']));
    }
    const caCert = docs.find((d) => d.kind === 'Certificate' && d.spec.isCA)!;
    expect(ca.spec.ca.secretName).toBe(caCert.spec.secretName);
  });

  test.each(Object.keys(OVERLAYS))('%s: workers accept only the coordinator, the coordinator only its workers, on ports the pods really have', (overlay) => {
    const objects = built[overlay as Overlay];
    const { options, objects: launched } = launcherObjects(overlay as Overlay);
    const coordinatorPod = { labels: one(objects, 'CronJob').spec.jobTemplate.spec.template.metadata.labels, spec: podSpecs(one(objects, 'CronJob'))[0] };
    const backfillPod = { labels: loadYamlFile(BACKFILL_JOB)[0]!.spec.template.metadata.labels, spec: podSpecs(loadYamlFile(BACKFILL_JOB)[0]!)[0] };
    const workerPod = { labels: launched.job.spec!.template.metadata!.labels!, spec: launched.job.spec!.template.spec as any };
    const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
    const policyFor = (pod: { labels: Record<string, string> }) => policies.filter((p) => selects(p.spec.podSelector, pod.labels));

    for (const [self, peers] of [[workerPod, [coordinatorPod, backfillPod]], [coordinatorPod, [workerPod]], [backfillPod, [workerPod]]] as const) {
      const mine = policyFor(self);
      expect(mine, 'exactly one policy selects the pod').toHaveLength(1);
      const policy = mine[0]!;
      expect(policy.spec.policyTypes).toEqual(['Ingress']);
      const portsByName = new Map<string, number>(self.spec.containers.flatMap((c: any) => (c.ports ?? []).map((p: any) => [p.name, p.containerPort])));
      for (const rule of policy.spec.ingress) {
        for (const p of rule.ports) expect(portsByName.has(p.port), `port ${p.port} on ${policy.metadata.name}'s pods`).toBe(true);
        const fromPods = rule.from.filter((f: any) => f.podSelector);
        const fromNamespaces = rule.from.filter((f: any) => f.namespaceSelector);
        // Peers in the namespace by pod labels, or the monitoring namespace on the metrics port only.
        if (fromNamespaces.length) expect(rule.ports.map((p: any) => p.port)).toEqual(['metrics']);
        for (const f of fromPods) expect(f.namespaceSelector).toBeUndefined();
        if (fromPods.length) for (const peer of peers) expect(fromPods.some((f: any) => selects(f.podSelector, peer.labels))).toBe(true);
      }
      // Nothing else in the namespace gets in: no rule selects, say, a pod of another app.
      for (const rule of policy.spec.ingress) for (const f of rule.from) if (f.podSelector) expect(selects(f.podSelector, { 'app.kubernetes.io/name': 'other' })).toBe(false);
    }
    // The coordinator listens for registrations on the port the NetworkPolicy opens.
    const registration = coordinatorPod.spec.containers[0].ports.find((p: any) => p.name === 'registration');
    expect(registration.containerPort).toBe(options.registrationPort);
    expect(backfillPod.spec.containers[0].ports.find((p: any) => p.name === 'registration').containerPort).toBe(options.registrationPort);
  });
});

describe('sizing', () => {
  /** The documented rule (k8s/README.md, "Sizing"): DuckDB's memoryLimit × 1.25 + 1 GiB for Node, Arrow and gRPC buffers. */
  const neededMemory = (memoryLimit: string) => quantity(memoryLimit) * 1.25 + GiB;

  test.each(Object.keys(OVERLAYS))("%s: the coordinator's memory limit is DuckDB's memoryLimit plus the documented headroom", (overlay) => {
    const { job } = launcherObjects(overlay as Overlay);
    const c = podSpecs(one(built[overlay as Overlay], 'CronJob'))[0].containers[0];
    expect(quantity(c.resources.limits.memory)).toBeGreaterThanOrEqual(neededMemory(job.resources.memoryLimit));
  });

  test("the backfill Job is sized for prod's job file", () => {
    const { job } = launcherObjects('prod');
    const c = podSpecs(loadYamlFile(BACKFILL_JOB)[0]!)[0].containers[0];
    expect(quantity(c.resources.limits.memory)).toBeGreaterThanOrEqual(neededMemory(job.resources.memoryLimit));
  });

  test.each(Object.keys(OVERLAYS))('%s: every emptyDir has a size limit that its pod requests as ephemeral-storage; fsGroup never walks the volume', (overlay) => {
    const pods = [podSpecs(one(built[overlay as Overlay], 'CronJob'))[0], podSpecs(loadYamlFile(BACKFILL_JOB)[0]!)[0], launcherObjects(overlay as Overlay).objects.job.spec!.template.spec];
    for (const spec of pods) {
      const emptyDirs = spec.volumes.filter((v: any) => v.emptyDir);
      expect(emptyDirs.length).toBeGreaterThan(0);
      const limits = emptyDirs.map((v: any) => quantity(v.emptyDir.sizeLimit));
      const requested = spec.containers.reduce((n: number, c: any) => n + quantity(c.resources.requests['ephemeral-storage'] ?? 0), 0);
      expect(requested).toBeGreaterThanOrEqual(limits.reduce((a: number, b: number) => a + b, 0));
      if (spec.securityContext.fsGroup !== undefined) expect(spec.securityContext.fsGroupChangePolicy).toBe('OnRootMismatch');
    }
  });

  test.each(Object.keys(OVERLAYS))('%s: every image, the workers\' included, has a release tag set by the overlay (never latest, never none)', (overlay) => {
    const images = [...podSpecs(one(built[overlay as Overlay], 'CronJob'))[0].containers.map((c: any) => c.image), launcherObjects(overlay as Overlay).options.image];
    for (const image of images) {
      const [name, digest] = image.split('@');
      const lastSegment = name.split('/').pop()!;
      const tag = lastSegment.includes(':') ? lastSegment.split(':')[1] : undefined;
      expect(tag ?? digest, `${image} has a tag or a digest`).toBeDefined();
      expect(tag, image).not.toBe('latest');
      if (digest) expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    }
  });
});

describe('workers.yaml for the platform', () => {
  test('podTemplate and a Kueue queue reach the worker Job, which validates', () => {
    const raw = {
      image: 'registry.example.com/nextbuy/worker-gpu:0.1.0',
      gpusPerPod: 1,
      queue: 'nextbuy-gpu',
      podTemplate: {
        labels: { team: 'data-science' },
        annotations: { 'cost-center': '4711' },
        priorityClassName: 'batch-high',
        runtimeClassName: 'nvidia',
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'ml', effect: 'NoSchedule' }],
        affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'gpu', operator: 'In', values: ['h100'] }] }] } } },
      },
    };
    const options = compileK8sBackendOptions({ ...parseWorkersYaml(raw, 'workers.yaml'), processEnv: { POD_NAME: 'c', POD_UID: 'u', POD_IP: '10.0.0.5' } });
    const { job } = buildWorkerObjects(options, { coordinatorAddress: '0.0.0.0:7070', runId: 'r', account: 'a', token: 't', workers: 4 }, 'ns');
    expect(validateObject(job as unknown as KubeObject)).toEqual([]);
    expect(job.metadata!.labels!['kueue.x-k8s.io/queue-name']).toBe('nextbuy-gpu');
    expect(job.spec!.suspend).toBe(true);
    const pod = job.spec!.template;
    expect(pod.metadata!.labels).toMatchObject({ team: 'data-science', 'app.kubernetes.io/component': 'worker' });
    expect(pod.metadata!.annotations).toMatchObject({ 'cost-center': '4711' });
    expect(pod.spec).toMatchObject({ priorityClassName: 'batch-high', runtimeClassName: 'nvidia', affinity: raw.podTemplate.affinity });
    expect(pod.spec!.tolerations).toContainEqual(raw.podTemplate.tolerations[0]);
  });

  test('podTemplate may not relabel what selects the pods', () => {
    expect(() => parseWorkersYaml({ image: 'w:1', podTemplate: { labels: { 'app.kubernetes.io/component': 'x' } } }, 'workers.yaml')).toThrow(
      /workers\.yaml: podTemplate\.labels\.app\.kubernetes\.io\/component is set by nextbuy itself/,
    );
  });
});
