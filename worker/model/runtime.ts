/**
 * Picks the tfjs backend the worker trains with, best first: native TensorFlow with CUDA (tfjs-node-gpu),
 * native TensorFlow on the CPU (tfjs-node), WebAssembly (tfjs-backend-wasm, with the UnsortedSegmentSum
 * kernel it lacks and the faster kernels in kernels/), then plain JavaScript. The native packages are optional dependencies — their install
 * downloads libtensorflow from outside the npm registry, which fails on locked-down machines — so they are
 * only ever loaded with a dynamic import and their absence is a logged reason, never an error.
 */
import * as tf from '@tensorflow/tfjs';
import { ModelError } from '../../core/errors.js';
import { log as processLog } from '../../core/log.js';
import { registerCpuKernels, registerWasmKernels } from './kernels/index.js';

// tfjs prints its own notices with console.warn/console.log, plain text on stderr and stdout, outside our
// log shape and level: "Hi, looks like you are running TensorFlow.js in Node.js. To speed things up
// dramatically, install our node backend…" (tfjs-backend-cpu, on its first tensor whenever IS_NODE), and
// kernel/flag re-registration notices. tfjs-core's log.warn and log.info print nothing once PROD is set, and
// PROD changes nothing else. The runtime actually chosen is logged by selectBackend.
tf.enableProdMode();

export const TFJS_RUNTIMES = ['tfjs-node-gpu', 'tfjs-node', 'tfjs-wasm', 'tfjs-cpu'] as const;
export type TfjsRuntime = (typeof TFJS_RUNTIMES)[number];

export interface BackendChoice {
  /** The runtime now active, e.g. 'tfjs-wasm'. */
  name: TfjsRuntime;
  /** Better runtimes that were tried and why each could not be used. */
  skipped: { name: TfjsRuntime; why: string }[];
  /** One line for logs and LoadModelReply notes. */
  note: string;
}

export interface SelectBackendOptions {
  /**
   * Runtimes to try, best first.
   * @default the NEXTBUY_TFJS_RUNTIMES environment variable (comma-separated), else all four in order
   */
  candidates?: TfjsRuntime[];
  /** Where the one line saying what was chosen goes. @default a debug event through core/log.ts */
  log?: (line: string) => void;
}

let chosen: Promise<BackendChoice> | null = null;

/**
 * Selects the best available backend once per process and logs the choice; later calls return the same
 * choice, unless they name their own candidates (then they choose again). `useBackend` switches to one.
 */
export function selectBackend(options: SelectBackendOptions = {}): Promise<BackendChoice> {
  if (chosen && !options.candidates) return chosen;
  const choice = choose(options);
  chosen = choice.catch((e) => {
    chosen = null;
    throw e;
  });
  return chosen;
}

/** Switches to one named runtime (no fallback); throws a ModelError saying why it is unavailable. */
export async function useBackend(name: TfjsRuntime): Promise<BackendChoice> {
  const why = await tryActivate(name);
  if (why !== null) throw new ModelError(`tfjs runtime ${name} is not available: ${why}`);
  const choice: BackendChoice = { name, skipped: [], note: `${name} (${describe(name)})` };
  chosen = Promise.resolve(choice);
  return choice;
}

/** Runtimes that can be activated here, best first (imports each candidate once; leaves the active backend as it was). */
export async function availableBackends(): Promise<TfjsRuntime[]> {
  const active = tf.getBackend();
  const out: TfjsRuntime[] = [];
  for (const name of TFJS_RUNTIMES) if ((await tryActivate(name)) === null) out.push(name);
  if (active) await tf.setBackend(active);
  return out;
}

async function choose(options: SelectBackendOptions): Promise<BackendChoice> {
  const log = options.log ?? ((line: string) => processLog.debug('runtime.tfjs', { note: line }));
  const candidates = options.candidates ?? candidatesFromEnv();
  const skipped: BackendChoice['skipped'] = [];
  for (const name of candidates) {
    const why = await tryActivate(name);
    if (why === null) {
      const reasons = skipped.map((s) => `${s.name}: ${s.why}`).join('; ');
      const note = `${name} (${describe(name)})${reasons ? `; skipped ${reasons}` : ''}`;
      log(`nextbuy: tfjs runs on ${note}`);
      return { name, skipped, note };
    }
    skipped.push({ name, why });
  }
  throw new ModelError(`no tfjs runtime could start (${skipped.map((s) => `${s.name}: ${s.why}`).join('; ')}): reinstall dependencies with npm ci`);
}

function candidatesFromEnv(): TfjsRuntime[] {
  return parseRuntimeList(process.env.NEXTBUY_TFJS_RUNTIMES);
}

/** A comma-separated runtime list (NEXTBUY_TFJS_RUNTIMES); empty or absent means all, best first. */
export function parseRuntimeList(raw: string | undefined): TfjsRuntime[] {
  if (!raw) return [...TFJS_RUNTIMES];
  const names = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!(TFJS_RUNTIMES as readonly string[]).includes(n)) {
      throw new ModelError(`NEXTBUY_TFJS_RUNTIMES names "${n}"; known runtimes are ${TFJS_RUNTIMES.join(', ')}`);
    }
  }
  return names as TfjsRuntime[];
}

const NATIVE_PACKAGE: Partial<Record<TfjsRuntime, string>> = {
  'tfjs-node-gpu': '@tensorflow/tfjs-node-gpu',
  'tfjs-node': '@tensorflow/tfjs-node',
};

/** Activates a runtime; returns null on success, else why it cannot run here. */
async function tryActivate(name: TfjsRuntime): Promise<string | null> {
  try {
    const pkg = NATIVE_PACKAGE[name];
    if (pkg) {
      try {
        await import(pkg);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
          return `${pkg} is not installed (optional dependency; its install downloads libtensorflow, which needs access beyond the npm registry)`;
        }
        return `${pkg} is installed but does not load: ${firstLine(e)}`;
      }
      return (await tf.setBackend('tensorflow')) ? null : `${pkg} loaded but its backend did not initialise`;
    }
    if (name === 'tfjs-wasm') {
      await import('@tensorflow/tfjs-backend-wasm');
      registerWasmKernels();
      return (await tf.setBackend('wasm')) ? null : 'the WebAssembly backend did not initialise';
    }
    registerCpuKernels();
    return (await tf.setBackend('cpu')) ? null : 'the JavaScript backend did not initialise';
  } catch (e) {
    return firstLine(e);
  }
}

function describe(name: TfjsRuntime): string {
  switch (name) {
    case 'tfjs-node-gpu':
      return 'native TensorFlow with CUDA';
    case 'tfjs-node':
      return 'native TensorFlow on the CPU';
    case 'tfjs-wasm':
      return `WebAssembly${tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? ' SIMD' : ''}, 1 thread`;
    case 'tfjs-cpu':
      return 'plain JavaScript, slowest';
  }
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0]!;
}
