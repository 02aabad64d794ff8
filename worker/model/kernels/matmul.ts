/**
 * BatchMatMul for tfjs-backend-wasm, improving three cases its own kernel handles slowly:
 *  - transposed operands (transposeA/transposeB) run on a path about 8× slower than the plain product, and
 *    every matMul gradient asks for one (dA = dC·Bᵀ, dB = Aᵀ·dC): the operand is transposed first (a fast
 *    copy) and the plain product runs;
 *  - Aᵀ·B of two matrices (every weight gradient) goes to the SIMD matmul_transpose_a in simd-kernels.ts:
 *    XNNPACK would first pack B, a fresh [rows, N] matrix each time, which costs more than the product;
 *  - a batch of small products (attention: one per customer) runs without XNNPACK at ~1 GFLOP/s: it goes to
 *    the SIMD batch_matmul in simd-kernels.ts instead.
 * Single products stay on XNNPACK, which is faster for them.
 */
import {
  BatchMatMul,
  broadcast_util,
  getKernel,
  registerKernel,
  Transpose,
  unregisterKernel,
  util,
  type BatchMatMulAttrs,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs';
import { simdKernelsFor } from './simd-memory.js';
import { callKernel, type WasmBackendLike } from './wasm-backend.js';

let installed = false;

export function registerFastMatMulForWasm(): void {
  if (installed) return;
  const original = getKernel(BatchMatMul, 'wasm');
  if (!original) return;
  const plain = original.kernelFunc as KernelFunc;
  const kernelFunc: KernelFunc = (args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as BatchMatMulAttrs;
    const backend = args.backend as unknown as WasmBackendLike & { getMemoryOffset(id: object): number };
    const swapLast = (t: TensorInfo) => {
      const perm = t.shape.map((_, i) => i);
      const r = perm.length;
      [perm[r - 2], perm[r - 1]] = [perm[r - 1]!, perm[r - 2]!];
      return callKernel(Transpose, 'wasm', backend, { x: t }, { perm });
    };
    const weightGradient = transposeA && !transposeB ? transposedProduct(backend, a, b) : null;
    if (weightGradient) return weightGradient;
    const at = transposeA ? swapLast(a) : a;
    const bt = transposeB ? swapLast(b) : b;
    try {
      return batched(backend, at, bt) ?? plain({ ...args, inputs: { a: at, b: bt }, attrs: { ...args.attrs, transposeA: false, transposeB: false } });
    } finally {
      if (at !== a) backend.disposeData(at.dataId);
      if (bt !== b) backend.disposeData(bt.dataId);
    }
  };
  unregisterKernel(BatchMatMul, 'wasm');
  registerKernel({ kernelName: BatchMatMul, backendName: 'wasm', setupFunc: original.setupFunc, kernelFunc });
  installed = true;
}

/** aᵀ·b for two matrices (a weight gradient xᵀ·dy) on the SIMD kernel, which needs no transposed copy; null where it does not apply. */
function transposedProduct(backend: WasmBackendLike & { getMemoryOffset(id: object): number }, a: TensorInfo, b: TensorInfo): TensorInfo | null {
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length !== 2 || b.shape.length !== 2) return null;
  const [R, M] = a.shape as [number, number];
  const [R2, N] = b.shape as [number, number];
  if (R !== R2 || N % 8 !== 0) return null;
  const simd = simdKernelsFor(backend);
  if (!simd) return null;
  const out = backend.makeOutput([M, N], 'float32');
  const address = (t: TensorInfo) => backend.getMemoryOffset(t.dataId);
  simd.matmulTransposeA(address(a), address(b), address(out), R, M, N);
  return out;
}

/** The SIMD path for more than one product with float32 operands and simple broadcasting; null otherwise. */
function batched(backend: WasmBackendLike & { getMemoryOffset(id: object): number }, a: TensorInfo, b: TensorInfo): TensorInfo | null {
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 3 || b.shape.length < 2) return null;
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const outer = broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  const batch = util.sizeFromShape(outer);
  const batchA = util.sizeFromShape(outerA);
  const batchB = util.sizeFromShape(outerB);
  if (batch <= 1 || (batchA !== batch && batchA !== 1) || (batchB !== batch && batchB !== 1)) return null;
  const [M, K] = a.shape.slice(-2) as [number, number];
  const [K2, N] = b.shape.slice(-2) as [number, number];
  if (K !== K2) return null; // let the original kernel report it
  const simd = simdKernelsFor(backend);
  if (!simd) return null;
  const out = backend.makeOutput([...outer, M, N], 'float32');
  const address = (t: TensorInfo) => backend.getMemoryOffset(t.dataId);
  simd.batchMatmul(address(a), address(b), address(out), batch, M, K, N, batchA === 1 ? 0 : M * K * 4, batchB === 1 ? 0 : K * N * 4);
  return out;
}
