/** The SIMD kernels bound to a tfjs-backend-wasm instance's memory (one instance per backend, made on first use). */
import { instantiateSimdKernels, type SimdKernels, type WasmMemoryLike } from './simd-kernels.js';

const byBackend = new WeakMap<object, SimdKernels | null>();

/** null where the backend's memory is not reachable or SIMD cannot start: callers fall back to JavaScript. */
export function simdKernelsFor(backend: unknown): SimdKernels | null {
  const b = backend as { wasm?: { asm?: { memory?: WasmMemoryLike } } };
  if (!byBackend.has(b)) {
    const memory = b.wasm?.asm?.memory;
    byBackend.set(b, memory ? instantiateSimdKernels(memory) : null);
  }
  return byBackend.get(b)!;
}
