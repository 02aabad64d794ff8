/**
 * Manifests under test: YAML loading, the small subset of kustomize that k8s/ uses, and validation of
 * each object against the Kubernetes schemas.
 *
 * kustomize subset: `resources` (files and folders), `namespace`, `images` (newName/newTag/digest on
 * pod containers) and `patches` given by `path` as strategic-merge patches (maps merge; lists of
 * containers, initContainers, env, volumes, volumeMounts and imagePullSecrets merge by name/mountPath;
 * other lists replace; `null` deletes). Anything else in a kustomization.yaml is refused loudly, so the
 * subset can never silently disagree with real kustomize.
 *
 * Validation is two checks: `kubernetes-models` (types, required fields, enums, formats) and, since
 * those schemas let unknown fields through, a strict walk that rejects any field the Kubernetes API
 * types (from @kubernetes/client-node's models) do not know: the equivalent of `kubectl --validate=strict`.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { CronJob, Job } from 'kubernetes-models/batch/v1';
import { ConfigMap, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { parseAllDocuments } from 'yaml';

export type KubeObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: unknown }; [k: string]: any };

/** Every document of a YAML file, parsed (errors name the file). */
export function loadYamlFile(file: string): KubeObject[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  const out: KubeObject[] = [];
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    const v = d.toJS();
    if (v !== null && v !== undefined) out.push(v as KubeObject);
  }
  return out;
}

const KUSTOMIZATION_KEYS = ['apiVersion', 'kind', 'namespace', 'resources', 'patches', 'images'];

/** Builds a kustomization folder with the subset described above. */
export function kustomizeBuild(dir: string): KubeObject[] {
  const file = path.join(dir, 'kustomization.yaml');
  const [k] = loadYamlFile(file) as unknown as Record<string, any>[];
  if (!k) throw new Error(`${file}: empty`);
  for (const key of Object.keys(k)) {
    if (!KUSTOMIZATION_KEYS.includes(key)) throw new Error(`${file}: "${key}" is outside the kustomize subset this test implements (${KUSTOMIZATION_KEYS.join(', ')})`);
  }
  let objects: KubeObject[] = [];
  for (const r of (k.resources ?? []) as string[]) {
    const p = path.resolve(dir, r);
    objects.push(...(statSync(p).isDirectory() ? kustomizeBuild(p) : loadYamlFile(p)));
  }
  for (const patch of (k.patches ?? []) as { path?: string; target?: unknown; patch?: string }[]) {
    if (!patch.path || patch.target !== undefined || patch.patch !== undefined) throw new Error(`${file}: only patches given by path (strategic merge, target from the patch itself) are supported`);
    for (const p of loadYamlFile(path.resolve(dir, patch.path))) {
      const i = objects.findIndex((o) => o.apiVersion === p.apiVersion && o.kind === p.kind && o.metadata.name === p.metadata.name);
      if (i < 0) throw new Error(`${file}: patch ${patch.path} targets ${p.kind}/${p.metadata.name}, which no resource defines`);
      objects[i] = strategicMerge(objects[i]!, p) as KubeObject;
    }
  }
  for (const img of (k.images ?? []) as { name: string; newName?: string; newTag?: string; digest?: string }[]) {
    objects = objects.map((o) => setImages(o, img));
  }
  if (k.namespace) {
    for (const o of objects) {
      o.metadata.namespace = k.namespace;
      if (o.kind === 'RoleBinding') for (const s of o.subjects ?? []) if (s.kind === 'ServiceAccount') s.namespace = k.namespace;
    }
  }
  return objects;
}

const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  imagePullSecrets: 'name',
};

export function strategicMerge(base: unknown, patch: unknown, field = ''): unknown {
  if (isMap(base) && isMap(patch)) {
    const out: Record<string, unknown> = structuredClone(base);
    for (const [k, v] of Object.entries(patch)) {
      if (k.startsWith('$')) throw new Error(`strategic merge directive ${k} is outside the test's subset`);
      if (v === null) delete out[k];
      else out[k] = k in out ? strategicMerge(out[k], v, k) : structuredClone(v);
    }
    return out;
  }
  const key = MERGE_KEYS[field];
  if (key && Array.isArray(base) && Array.isArray(patch)) {
    const out = structuredClone(base) as Record<string, unknown>[];
    for (const item of patch as Record<string, unknown>[]) {
      const i = out.findIndex((x) => x[key] === item[key]);
      if (i >= 0) out[i] = strategicMerge(out[i], item) as Record<string, unknown>;
      else out.push(structuredClone(item));
    }
    return out;
  }
  return structuredClone(patch);
}

function setImages(o: KubeObject, img: { name: string; newName?: string; newTag?: string; digest?: string }): KubeObject {
  const out = structuredClone(o);
  for (const spec of podSpecs(out)) {
    for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
      const name = String(c.image).replace(/@.*$/, '').replace(/:[^:/]+$/, '');
      if (name !== img.name) continue;
      const tag = img.digest ? `@${img.digest}` : img.newTag ? `:${img.newTag}` : String(c.image).slice(name.length);
      c.image = `${img.newName ?? name}${tag}`;
    }
  }
  return out;
}

/** The pod specs inside an object: Pod, Job/Deployment templates, CronJob job templates. */
export function podSpecs(o: KubeObject): any[] {
  if (o.kind === 'Pod') return [o.spec];
  if (o.kind === 'CronJob') return [o.spec?.jobTemplate?.spec?.template?.spec].filter(Boolean);
  if (o.spec?.template?.spec) return [o.spec.template.spec];
  return [];
}

const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'batch/v1/CronJob': CronJob,
  'batch/v1/Job': Job,
  'v1/ConfigMap': ConfigMap,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/Pod': Pod,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

/** Problems with one object: schema violations and unknown fields; [] when valid. */
export function validateObject(o: KubeObject): string[] {
  const where = `${o.kind ?? '?'}/${o.metadata?.name ?? '?'}`;
  const Model = MODELS[`${o.apiVersion}/${o.kind}`];
  if (!Model) return [`${where}: no schema for apiVersion ${o.apiVersion} kind ${o.kind}`];
  const problems: string[] = [];
  try {
    new Model(structuredClone(o)).validate();
  } catch (e) {
    problems.push(`${where}: ${(e as Error).message}`);
  }
  const version = String(o.apiVersion).split('/').pop()!;
  const typeName = `V${version.slice(1)}${o.kind}`;
  problems.push(...unknownFields(o, typeName, where));
  return problems;
}

const models = k8s as unknown as Record<string, { getAttributeTypeMap?: () => { name: string; baseName: string; type: string }[] }>;

function unknownFields(value: unknown, type: string, at: string): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1]!, `${at}[${i}]`)) : [];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return isMap(value) ? Object.entries(value).flatMap(([k, v]) => unknownFields(v, map[1]!, `${at}.${k}`)) : [];
  const model = models[type];
  if (!model?.getAttributeTypeMap || !isMap(value)) return [];
  const attrs = model.getAttributeTypeMap();
  const out: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    const attr = attrs.find((a) => a.baseName === k);
    if (!attr) out.push(`${at}.${k}: unknown field (not in ${type})`);
    else out.push(...unknownFields(v, attr.type, `${at}.${k}`));
  }
  return out;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Kubernetes quantities ('500m', '2Gi', '6GB', '8') as numbers of base units. */
export function quantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^(\d+(?:\.\d+)?)(m|k|K|M|G|T|Ki|Mi|Gi|Ti|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$/.exec(q.trim());
  if (!m) throw new Error(`not a quantity: "${q}"`);
  const unit: Record<string, number> = {
    m: 1e-3, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12,
    Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40,
  };
  return Number(m[1]) * (m[2] ? unit[m[2]]! : 1);
}

/**
 * The oldest Kubernetes the manifests and the launcher's objects are for (k8s/README.md says so). The
 * fields they rely on: Job backoffLimitPerIndex and podReplacementPolicy (beta, on by default, in 1.29),
 * podFailurePolicy, CronJob timeZone, fsGroupChangePolicy.
 */
export const MIN_KUBERNETES_MINOR = 29;

/**
 * API fields added after 1.29, by the type that holds them and the minor version that added them (from
 * the Kubernetes release notes). The schemas shipped here (kubernetes-models 4.5.1: Kubernetes 1.33;
 * @kubernetes/client-node 1.4: 1.34) accept them, a 1.29 API server would not: newerFields() finds them.
 */
const FIELDS_AFTER_1_29: Record<string, number> = {
  'V1JobSpec.managedBy': 30,
  'V1JobSpec.successPolicy': 30,
  'V1PodSecurityContext.appArmorProfile': 30,
  'V1SecurityContext.appArmorProfile': 30,
  'V1VolumeMount.recursiveReadOnly': 30,
  'V1ServiceSpec.trafficDistribution': 30,
  'V1PodSecurityContext.supplementalGroupsPolicy': 31,
  'V1Volume.image': 31,
  'V1PodSpec.resources': 32,
  'V1PodSecurityContext.seLinuxChangePolicy': 32,
  'V1Lifecycle.stopSignal': 33,
  'V1EnvVarSource.fileKeyRef': 34,
  'V1PodSpec.hostnameOverride': 34,
  'V1Container.restartPolicyRules': 34,
};

/** Fields `o` uses that a Kubernetes 1.`minor` API server does not know (see FIELDS_AFTER_1_29). */
export function newerFields(o: KubeObject, minor = MIN_KUBERNETES_MINOR): string[] {
  const version = String(o.apiVersion).split('/').pop()!;
  const out: string[] = [];
  walkTyped(o, `V${version.slice(1)}${o.kind}`, `${o.kind}/${o.metadata?.name ?? '?'}`, (type, field, at) => {
    const since = FIELDS_AFTER_1_29[`${type}.${field}`];
    if (since !== undefined && since > minor) out.push(`${at}.${field}: added in 1.${since}`);
  });
  return out;
}

function walkTyped(value: unknown, type: string, at: string, visit: (type: string, field: string, at: string) => void): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((v, i) => walkTyped(v, array[1]!, `${at}[${i}]`, visit));
    return;
  }
  const model = models[type];
  if (!model?.getAttributeTypeMap || !isMap(value)) return;
  const attrs = model.getAttributeTypeMap();
  for (const [k, v] of Object.entries(value)) {
    visit(type, k, at);
    const attr = attrs.find((a) => a.baseName === k);
    if (attr) walkTyped(v, attr.type, `${at}.${k}`, visit);
  }
}

/** The kubectl on PATH: its client version, or null when there is none. */
export function kubectlVersion(): { major: number; minor: number; kustomize: string } | null {
  const r = spawnSync('kubectl', ['version', '--client', '-o', 'json'], { encoding: 'utf8' });
  if (r.status !== 0 || r.error) return null;
  const v = JSON.parse(r.stdout) as { clientVersion: { major: string; minor: string }; kustomizeVersion?: string };
  return { major: Number(v.clientVersion.major), minor: Number(v.clientVersion.minor.replace(/\D+$/, '')), kustomize: v.kustomizeVersion ?? '' };
}

/** `kubectl kustomize DIR`: what `kubectl apply -k DIR` would send, parsed. */
export function kubectlKustomize(dir: string): KubeObject[] {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${r.stderr || r.error?.message}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as KubeObject).filter(Boolean);
}

/** Does `selector` (matchLabels only) select an object with these labels? */
export function selects(selector: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] }, labels: Record<string, string>): boolean {
  if (selector.matchExpressions?.length) throw new Error('matchExpressions are outside what this test checks');
  return Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
}
