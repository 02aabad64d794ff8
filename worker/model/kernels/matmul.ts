/**
 * BatchMatMul for tfjs-backend-wasm with transposed operands. Its own kernel handles transposeA/transposeB
 * on a path about 8× slower than the plain product; every matMul gradient asks for one (dA = dC·Bᵀ,
 * dB = Aᵀ·dC). Transposing the operand first (a fast copy) and running the plain product is much cheaper.
 */
import { BatchMatMul, getKernel, registerKernel, Transpose, unregisterKernel, type BatchMatMulAttrs, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs';
import { callKernel, type WasmBackendLike } from './wasm-backend.js';

let installed = false;

export function registerPlainMatMulForWasm(): void {
  if (installed) return;
  const original = getKernel(BatchMatMul, 'wasm');
  if (!original) return;
  const plain = original.kernelFunc as KernelFunc;
  const kernelFunc: KernelFunc = (args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as BatchMatMulAttrs;
    if (!transposeA && !transposeB) return plain(args);
    const backend = args.backend as unknown as WasmBackendLike;
    const swapLast = (t: TensorInfo) => {
      const perm = t.shape.map((_, i) => i);
      const r = perm.length;
      [perm[r - 2], perm[r - 1]] = [perm[r - 1]!, perm[r - 2]!];
      return callKernel(Transpose, 'wasm', backend, { x: t }, { perm });
    };
    const at = transposeA ? swapLast(a) : a;
    const bt = transposeB ? swapLast(b) : b;
    try {
      return plain({ ...args, inputs: { a: at, b: bt }, attrs: { ...args.attrs, transposeA: false, transposeB: false } });
    } finally {
      if (at !== a) backend.disposeData(at.dataId);
      if (bt !== b) backend.disposeData(bt.dataId);
    }
  };
  unregisterKernel(BatchMatMul, 'wasm');
  registerKernel({ kernelName: BatchMatMul, backendName: 'wasm', setupFunc: original.setupFunc, kernelFunc });
  installed = true;
}
