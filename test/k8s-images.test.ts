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

/** `image:tag@sha256:<64 hex>`: reproducible (the digest) and readable (the tag). */
const PINNED = /^[a-z0-9./-]+:[\w][\w.-]*@sha256:[0-9a-f]{64}$/;
const WORKER_IMAGES = [IMAGES['worker-cpu'], IMAGES['worker-gpu']];

/** Bare package names a source tree imports (static imports and exports; dynamic ones with a literal). */
function importedPackages(dirs: string[]): Set<string> {
  const out = new Set<string>();
  const walk = (dir: string): string[] => readdirSync(dir).flatMap((f) => (statSync(path.join(dir, f)).isDirectory() ? walk(path.join(dir, f)) : /\.ts$/.test(f) ? [path.join(dir, f)] : []));
  for (const file of dirs.flatMap(walk)) {
    for (const m of readFileSync(file, 'utf8').matchAll(/(?:from|import\()\s*'([^'.][^']*)'/g)) {
      if (m[1]!.startsWith('node:')) continue;
      const parts = m[1]!.split('/');
      out.add(m[1]!.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
    }
  }
  return out;
}

describe('images', () => {
  test.each(Object.entries(IMAGES))('%s: compiled in a build stage, production dependencies from the lockfile, non-root, a health check, tini as PID 1', (_, file) => {
    const { stages } = readDockerfile(file);
    const all = stages.flatMap((s) => s.steps);
    const runs = all.filter((s) => s.op === 'RUN').map((s) => s.args);
    expect(runs.some((r) => /\bnpm ci\b.*--omit=dev/.test(r)), 'npm ci --omit=dev').toBe(true);
    expect(runs.some((r) => /\bnpm install\b/.test(r)), 'npm install would resolve outside the lockfile').toBe(false);
    expect(all.some((s) => s.op === 'COPY' && /\bpackage-lock\.json\b/.test(s.args) && !s.args.includes('--from'))).toBe(true);

    // TypeScript is compiled in its own stage (npm run build); the image carries dist/ and no tsx.
    const build = stages.find((s) => s.name === 'build')!;
    expect(build.steps.filter((s) => s.op === 'RUN').map((s) => s.args)).toContain('npm run build');
    const final = stages.at(-1)!;
    expect(final.steps.some((s) => s.op === 'COPY' && /^--from=build \/app\/dist/.test(s.args))).toBe(true);
    expect(final.steps.some((s) => s.op === 'COPY' && !s.args.includes('--from') && /^(core|proto|worker|coordinator|jobs|bin)\b/.test(s.args)), 'no TypeScript sources in the image').toBe(false);
    expect(JSON.stringify(final.steps)).not.toMatch(/tsx/);
    expect(lock.packages['']?.dependencies?.tsx, 'tsx is a dev dependency: --omit=dev leaves it out').toBeUndefined();

    const users = final.steps.filter((s) => s.op === 'USER').map((s) => s.args);
    expect(users.at(-1)).toBe(`${NEXTBUY_UID}:${NEXTBUY_UID}`);
    expect(final.steps.some((s) => s.op === 'HEALTHCHECK' && s.args.includes('/healthz'))).toBe(true);
    expect(execForm(final.steps.find((s) => s.op === 'ENTRYPOINT')!.args)).toEqual(['tini', '--']);
    expect(final.steps.some((s) => s.op === 'COPY' && /--from=deps .*node_modules/.test(s.args))).toBe(true);

    // ONNX Runtime: only the linux-x64 binaries stay.
    const deps = stages.find((s) => s.name === 'deps')!.steps.filter((s) => s.op === 'RUN').map((s) => s.args).join(' ');
    expect(deps).toMatch(/find node_modules\/onnxruntime-node\/bin\/napi-v6 -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf \{\} \+/);
    expect(deps).toMatch(/find node_modules\/onnxruntime-node\/bin\/napi-v6\/linux -mindepth 1 -maxdepth 1 ! -name x64 -exec rm -rf \{\} \+/);
    expect(readdirSync('node_modules/onnxruntime-node/bin/napi-v6').sort(), 'the layout those commands prune').toEqual(['darwin', 'linux', 'win32']);
  });

  test('native TensorFlow only where it is wanted: the CPU images never run its install, the GPU image keeps tfjs-node-gpu only', () => {
    const depsRun = (file: string) => readDockerfile(file).stages.find((s) => s.name === 'deps')!.steps.filter((s) => s.op === 'RUN').map((s) => s.args).join(' ');
    expect(depsRun(IMAGES['worker-cpu'])).toMatch(/npm ci --omit=dev --omit=optional --ignore-scripts/);
    // DuckDB's linux-x64 binding is an optional dependency the coordinator needs: scripts off, tfjs-node removed.
    expect(lock.packages['node_modules/@duckdb/node-bindings-linux-x64'].optional).toBe(true);
    expect(depsRun(IMAGES.coordinator)).toMatch(/npm ci --omit=dev --ignore-scripts .*rm -rf node_modules\/@tensorflow\/tfjs-node node_modules\/@tensorflow\/tfjs-node-gpu/);
    expect(depsRun(IMAGES.coordinator)).toMatch(/test -f node_modules\/@duckdb\/node-bindings-linux-x64\/package\.json/);
    const gpu = depsRun(IMAGES['worker-gpu']);
    expect(gpu).toMatch(/rm -rf node_modules\/@tensorflow\/tfjs-node /);
    expect(gpu).toMatch(/tfjs-node-gpu\/lib\/napi-v\*\/tfjs_binding\.node/);
    expect(pkg.optionalDependencies['@tensorflow/tfjs-node-gpu']).toBe(lock.packages['node_modules/@tensorflow/tfjs'].version);
  });

  test('the worker images leave out what only the coordinator uses, which the worker code never imports', () => {
    const used = importedPackages(['worker', 'core', 'proto']);
    for (const coordinatorOnly of ['@duckdb/node-api', '@duckdb/node-bindings', '@kubernetes/client-node', 'yaml', 'p-queue']) expect(used.has(coordinatorOnly), coordinatorOnly).toBe(false);
    for (const file of WORKER_IMAGES) {
      const runs = readDockerfile(file).stages.find((s) => s.name === 'deps')!.steps.map((s) => s.args).join(' ');
      expect(runs).toMatch(/rm -rf .*node_modules\/@duckdb .*node_modules\/@kubernetes\/client-node/);
      const copied = readDockerfile(file).stages.at(-1)!.steps.filter((s) => s.op === 'COPY' && s.args.startsWith('--from=build')).map((s) => s.args.split(/\s+/)[1]);
      expect(copied.sort()).toEqual(['/app/dist/core', '/app/dist/package.json', '/app/dist/proto', '/app/dist/worker']);
    }
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
    for (const heavy of ['node_modules/x', '.git/HEAD', 'out/taobao', 'dist/x.js', 'test/k8s-images.test.ts', 'bench/x.ts']) expect(dockerIgnored(heavy), heavy).toBe(true);
  });

  test('base images are pinned by digest with the tag beside it: Node 20 slim; CUDA 11.8 with cuDNN 8 for the GPU worker, plus CUDA 12 libraries for ONNX Runtime', () => {
    const major = Number(process.versions.node.split('.')[0]);
    for (const file of Object.values(IMAGES)) {
      const { stages } = readDockerfile(file);
      for (const s of stages) expect(s.from, `${file}: FROM ${s.from}`).toMatch(PINNED);
    }
    for (const file of [IMAGES.coordinator, IMAGES['worker-cpu']]) {
      for (const s of readDockerfile(file).stages) expect(s.from).toMatch(new RegExp(`^node:${major}\\.\\d+-bookworm-slim@`));
    }
    expect(pkg.engines.node).toBe('>=20.19');
    const gpu = readDockerfile(IMAGES['worker-gpu']);
    expect(gpu.stages.at(-1)!.from).toMatch(/^nvidia\/cuda:11\.8\.0-cudnn8-runtime-ubuntu22\.04@sha256:/);
    const finalRun = gpu.stages.at(-1)!.steps.filter((s) => s.op === 'RUN').map((s) => s.args).join(' ');
    expect(finalRun).toMatch(/libcudnn9-cuda-12/);
    expect(finalRun).toMatch(/libcublas-12-\$\{CUDA_12_MINOR\}/);
    // ONNX Runtime's CUDA provider: downloaded by its install script in the GPU build only, and checked.
    const depsStage = gpu.stages.find((s) => s.name === 'deps')!;
    expect(depsStage.steps).toContainEqual({ op: 'ENV', args: 'ONNXRUNTIME_NODE_INSTALL=true' });
    expect(depsStage.steps.map((s) => s.args).join(' ')).toMatch(/test -f node_modules\/onnxruntime-node\/bin\/napi-v6\/linux\/x64\/libonnxruntime_providers_cuda\.so/);
  });

  test('what the pods run is in the images: the CronJob runs the compiled CLI from the coordinator image, the launcher runs the compiled worker from the worker images', () => {
    const cron = kustomizeBuild('k8s/base').find((o) => o.kind === 'CronJob')!;
    const coordinatorArgs: string[] = podSpecs(cron)[0].containers[0].args;
    const builtFrom = (p: string) => p.replace(/^dist\//, '').replace(/\.js$/, '.ts');
    const inDist = (file: string, p: string) =>
      readDockerfile(file).stages.at(-1)!.steps.filter((s) => s.op === 'COPY' && s.args.startsWith('--from=build')).some((s) => {
        const to = s.args.split(/\s+/).at(-1)!.replace(/^\.\//, '');
        return p === to || p.startsWith(`${to}/`);
      });
    expect(coordinatorArgs[0]).toBe('node');
    expect(coordinatorArgs[1]).toBe('dist/jobs/cli.js');
    expect(inDist(IMAGES.coordinator, coordinatorArgs[1]!)).toBe(true);
    expect(existsSync(builtFrom(coordinatorArgs[1]!)), 'jobs/cli.ts compiles to it').toBe(true);

    const compiled = compileK8sBackendOptions({ image: 'w:1', coordinatorPod: { name: 'p', uid: 'u' }, coordinatorHost: '10.0.0.1' });
    const { job } = buildWorkerObjects(compiled, { coordinatorAddress: '0.0.0.0:7070', runId: 'r', account: 'a', token: 't', workers: 1 }, 'ns');
    const container = job.spec!.template.spec!.containers[0]!;
    expect(container.command).toBeUndefined(); // keeps the image's ENTRYPOINT (tini)
    const entry = container.args!.find((a) => a.endsWith('.js'))!;
    expect(existsSync(builtFrom(entry))).toBe(true);
    for (const file of WORKER_IMAGES) {
      expect(inDist(file, entry), `${file} has ${entry}`).toBe(true);
      expect(execForm(readDockerfile(file).stages.at(-1)!.steps.find((s) => s.op === 'CMD')!.args)).toEqual(container.args);
      // The probes the launcher sets are served on the port the image sets (worker/health.ts).
      const env = readDockerfile(file).stages.at(-1)!.steps.filter((s) => s.op === 'ENV').map((s) => s.args).join(' ');
      expect(env).toContain(`NEXTBUY_METRICS_PORT=${compiled.metricsPort}`);
    }
  });
});

function readdirFirst(dir: string): string {
  const names = readdirSync(dir);
  return names.find((n) => !n.startsWith('.')) ?? names[0] ?? 'x';
}
