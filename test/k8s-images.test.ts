/**
 * The Dockerfiles under k8s/images, read as text (no Docker engine runs here, so no image is built):
 * same lockfile, production dependencies only, non-root, a health check, everything they copy exists
 * and survives .dockerignore, and they agree with the manifests and the launcher.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { buildWorkerObjects, compileK8sBackendOptions, NEXTBUY_UID } from '../coordinator/cluster/k8s/index.js';
import { kustomizeBuild, podSpecs } from './helpers/k8s-manifests.js';

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name: string | null;
  steps: Instruction[];
}

/** Instructions with line continuations joined and comments dropped, grouped by build stage. */
function readDockerfile(file: string): { args: Map<string, string>; stages: Stage[] } {
  const text = readFileSync(file, 'utf8').replace(/\\\n/g, ' ');
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\w+)\s+(.*)$/.exec(line);
    expect(m, `${file}: ${line}`).not.toBeNull();
    const op = m![1]!.toUpperCase();
    const rest = m![2]!.trim();
    if (op === 'ARG' && stages.length === 0) {
      const [k, v = ''] = rest.split('=');
      args.set(k!, v);
      continue;
    }
    if (op === 'FROM') {
      const [image, as, name] = rest.split(/\s+/);
      const resolved = image!.replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? '');
      stages.push({ from: resolved, name: as?.toUpperCase() === 'AS' ? name! : null, steps: [] });
      continue;
    }
    stages.at(-1)!.steps.push({ op, args: rest });
  }
  return { args, stages };
}

/** .dockerignore semantics: the last matching pattern wins; a pattern matches a path or any of its parent folders. */
function dockerIgnored(file: string): boolean {
  const patterns = readFileSync('.dockerignore', 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const parts = file.split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const p of patterns) {
    const negate = p.startsWith('!');
    const body = (negate ? p.slice(1) : p).replace(/\/$/, '');
    const re = new RegExp(`^${body.split('**').map((s) => s.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')).join('.*')}$`);
    if (candidates.some((c) => re.test(c))) ignored = !negate;
  }
  return ignored;
}

/** JSON-form instruction arguments, e.g. ENTRYPOINT ["tini", "--"]. */
const execForm = (s: string) => JSON.parse(s) as string[];

const IMAGES = {
  coordinator: 'k8s/images/coordinator.Dockerfile',
  'worker-cpu': 'k8s/images/worker-cpu.Dockerfile',
  'worker-gpu': 'k8s/images/worker-gpu.Dockerfile',
} as const;
const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));

describe('images', () => {
  test.each(Object.entries(IMAGES))('%s: production dependencies from the lockfile, non-root, a health check, tini as PID 1', (_, file) => {
    const { stages } = readDockerfile(file);
    const all = stages.flatMap((s) => s.steps);
    const runs = all.filter((s) => s.op === 'RUN').map((s) => s.args);
    expect(runs.some((r) => /\bnpm ci\b.*--omit=dev/.test(r)), 'npm ci --omit=dev').toBe(true);
    expect(runs.some((r) => /\bnpm install\b(?!.*--no-save)/.test(r)), 'npm install would rewrite the lockfile').toBe(false);
    expect(all.some((s) => s.op === 'COPY' && /\bpackage-lock\.json\b/.test(s.args) && !s.args.includes('--from'))).toBe(true);

    const final = stages.at(-1)!;
    const users = final.steps.filter((s) => s.op === 'USER').map((s) => s.args);
    expect(users.at(-1)).toBe(`${NEXTBUY_UID}:${NEXTBUY_UID}`);
    expect(final.steps.some((s) => s.op === 'HEALTHCHECK' && s.args.includes('/healthz'))).toBe(true);
    expect(execForm(final.steps.find((s) => s.op === 'ENTRYPOINT')!.args)).toEqual(['tini', '--']);
    expect(final.steps.some((s) => s.op === 'COPY' && /--from=deps .*node_modules/.test(s.args))).toBe(true);
  });

  test.each(Object.entries(IMAGES))('%s: every file it copies exists and is not excluded by .dockerignore', (_, file) => {
    const { stages } = readDockerfile(file);
    for (const s of stages.flatMap((x) => x.steps)) {
      if (s.op !== 'COPY' || s.args.includes('--from')) continue;
      const words = s.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      for (const src of words.slice(0, -1)) {
        expect(existsSync(src), `${file}: COPY ${src}`).toBe(true);
        const probe = statSync(src).isDirectory() ? path.join(src, readdirFirst(src)) : src;
        expect(dockerIgnored(probe), `${file}: ${probe} is excluded by .dockerignore`).toBe(false);
      }
    }
    for (const heavy of ['node_modules/x', '.git/HEAD', 'out/taobao', 'test/k8s-images.test.ts', 'bench/x.ts']) expect(dockerIgnored(heavy), heavy).toBe(true);
  });

  test('base images: Node 20 slim for the coordinator and CPU worker; CUDA 11.8 with cuDNN 8 for the GPU worker, with tfjs-node-gpu matching the locked tfjs', () => {
    const major = Number(process.versions.node.split('.')[0]);
    for (const file of [IMAGES.coordinator, IMAGES['worker-cpu']]) {
      const { stages } = readDockerfile(file);
      for (const s of stages) expect(s.from).toMatch(new RegExp(`^node:${major}\\.\\d+-bookworm-slim$`));
    }
    expect(pkg.engines.node).toBe('>=20.19');
    const gpu = readDockerfile(IMAGES['worker-gpu']);
    expect(gpu.stages.at(-1)!.from).toBe('nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04');
    expect(gpu.args.get('TFJS_NODE_GPU_VERSION')).toBe(lock.packages['node_modules/@tensorflow/tfjs'].version);
    const installs = gpu.stages.flatMap((s) => s.steps).filter((s) => s.op === 'RUN' && s.args.includes('tfjs-node-gpu@'));
    expect(installs).toHaveLength(1);
    expect(installs[0]!.args).toMatch(/npm ci --omit=dev.*&& npm install --omit=dev --no-save .*"@tensorflow\/tfjs-node-gpu@\$\{TFJS_NODE_GPU_VERSION\}"/);
  });

  test('what the pods run is in the images: the CronJob runs bin/nextbuy.js from the coordinator image, the launcher runs worker/main.ts from the worker images', () => {
    const cron = kustomizeBuild('k8s/base').find((o) => o.kind === 'CronJob')!;
    const coordinatorArgs: string[] = podSpecs(cron)[0].containers[0].args;
    const copied = (file: string) =>
      readDockerfile(file).stages.at(-1)!.steps.filter((s) => s.op === 'COPY' && !s.args.includes('--from')).map((s) => s.args.split(/\s+/)[0]!);
    const inImage = (file: string, p: string) => copied(file).some((src) => p === src || p.startsWith(`${src}/`));
    expect(coordinatorArgs[0]).toBe('node');
    expect(inImage(IMAGES.coordinator, coordinatorArgs[1]!)).toBe(true);
    expect(existsSync(coordinatorArgs[1]!)).toBe(true);

    const compiled = compileK8sBackendOptions({ image: 'w:1', coordinatorPod: { name: 'p', uid: 'u' }, coordinatorHost: '10.0.0.1' });
    const { job } = buildWorkerObjects(compiled, { coordinatorAddress: '0.0.0.0:7070', runId: 'r', account: 'a', token: 't', workers: 1 }, 'ns');
    const container = job.spec!.template.spec!.containers[0]!;
    expect(container.command).toBeUndefined(); // keeps the image's ENTRYPOINT (tini)
    const entry = container.args!.find((a) => a.endsWith('.ts'))!;
    for (const file of [IMAGES['worker-cpu'], IMAGES['worker-gpu']]) {
      expect(inImage(file, entry), `${file} has ${entry}`).toBe(true);
      expect(execForm(readDockerfile(file).stages.at(-1)!.steps.find((s) => s.op === 'CMD')!.args)).toEqual(container.args);
    }
  });
});

function readdirFirst(dir: string): string {
  const names = readdirSync(dir);
  return names.find((n) => !n.startsWith('.')) ?? names[0] ?? 'x';
}
