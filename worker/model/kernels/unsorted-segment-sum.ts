/**
 * UnsortedSegmentSum for tfjs-backend-wasm, which ships without it. The gradient of every embedding lookup
 * (tf.gather) is an unsorted segment sum, so without this kernel the wasm backend cannot train an embedding.
 * It runs straight over the tensors' memory in the wasm heap: as WebAssembly SIMD when rows are a multiple
 * of 4 floats (simd-kernels.ts), else in JavaScript.
 */
import {
  getKernel,
  registerKernel,
  UnsortedSegmentSum,
  util,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
  type UnsortedSegmentSumAttrs,
} from '@tensorflow/tfjs';
import { simdKernelsFor } from './simd-memory.js';
import type { WasmBackendLike } from './wasm-backend.js';


const unsortedSegmentSumWasm: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo };
  const { numSegments } = attrs as unknown as UnsortedSegmentSumAttrs;
  const wasm = backend as unknown as WasmBackendLike;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') throw new Error(`UnsortedSegmentSum (wasm): dtype ${x.dtype} is not supported`);
  const segments = util.sizeFromShape(segmentIds.shape);
  const inner = segments === 0 ? 0 : util.sizeFromShape(x.shape) / segments;
  const outShape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
  const out = wasm.makeOutput(outShape, x.dtype);
  const simd = x.dtype === 'float32' && inner % 4 === 0 ? simdKernelsFor(backend) : null;
  if (simd) {
    (wasm.typedArrayFromHeap(out) as Float32Array).fill(0);
    const address = (t: TensorInfo) => (backend as unknown as { getMemoryOffset(id: object): number }).getMemoryOffset(t.dataId);
    simd.segmentSum(address(x), address(segmentIds), segments, inner, numSegments, address(out));
    return out;
  }
  // Views are taken after makeOutput: allocating may grow (and so move) the wasm heap.
  const values = wasm.typedArrayFromHeap(x) as Float32Array | Int32Array;
  const ids = (wasm.typedArrayFromHeap(segmentIds) as Int32Array).subarray(0, segments);
  const target = wasm.typedArrayFromHeap(out) as Float32Array | Int32Array;
  target.fill(0);
  if (x.dtype === 'float32') sumRows(values as Float32Array, ids, inner, numSegments, target as Float32Array);
  else sumRows(values as Int32Array, ids, inner, numSegments, target as Int32Array);
  return out;
};

function sumRows<A extends Float32Array | Int32Array>(values: A, ids: Int32Array, inner: number, numSegments: number, target: A): void {
  for (let s = 0; s < ids.length; s++) {
    const id = ids[s]!;
    if (id < 0 || id >= numSegments) continue; // TensorFlow drops out-of-range ids
    const from = s * inner;
    const to = id * inner;
    for (let k = 0; k < inner; k++) target[to + k] = target[to + k]! + values[from + k]!;
  }
}

export const unsortedSegmentSumWasmConfig: KernelConfig = {
  kernelName: UnsortedSegmentSum,
  backendName: 'wasm',
  kernelFunc: unsortedSegmentSumWasm,
};

/** Registers the kernel once; a later tfjs-backend-wasm that brings its own keeps its own. */
export function registerUnsortedSegmentSumForWasm(): void {
  if (!getKernel(UnsortedSegmentSum, 'wasm')) registerKernel(unsortedSegmentSumWasmConfig);
}
