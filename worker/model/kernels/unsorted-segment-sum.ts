/**
 * UnsortedSegmentSum — the gradient of every embedding lookup (tf.gather) — for the wasm and plain
 * JavaScript backends. tfjs-backend-wasm ships without it, so it could not train an embedding at all;
 * tfjs-backend-cpu's builds one mask per segment (time ∝ vocabulary × tokens: 80 s for one 1,600-token
 * batch over a 5,000-item vocabulary). Here it is one pass over the rows: WebAssembly SIMD over the wasm
 * heap when rows are a multiple of 4 floats (simd-kernels.ts), else a JavaScript loop.
 */
import { getKernel, registerKernel, unregisterKernel, UnsortedSegmentSum, util, type KernelFunc, type TensorInfo, type UnsortedSegmentSumAttrs } from '@tensorflow/tfjs';
import { simdKernelsFor } from './simd-memory.js';
import type { WasmBackendLike } from './wasm-backend.js';

type Values = Float32Array | Int32Array;

interface Geometry {
  segments: number;
  inner: number;
  outShape: number[];
}

function geometry(x: TensorInfo, segmentIds: TensorInfo, numSegments: number): Geometry {
  if (x.dtype !== 'float32' && x.dtype !== 'int32') throw new Error(`UnsortedSegmentSum: dtype ${x.dtype} is not supported`);
  const segments = util.sizeFromShape(segmentIds.shape);
  return {
    segments,
    inner: segments === 0 ? 0 : util.sizeFromShape(x.shape) / segments,
    outShape: [numSegments, ...x.shape.slice(segmentIds.shape.length)],
  };
}

function sumRows(values: Values, ids: Int32Array, inner: number, numSegments: number, target: Values): void {
  for (let s = 0; s < ids.length; s++) {
    const id = ids[s]!;
    if (id < 0 || id >= numSegments) continue; // TensorFlow drops out-of-range ids
    const from = s * inner;
    const to = id * inner;
    for (let k = 0; k < inner; k++) target[to + k] = target[to + k]! + values[from + k]!;
  }
}

const wasmKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo };
  const { numSegments } = attrs as unknown as UnsortedSegmentSumAttrs;
  const wasm = backend as unknown as WasmBackendLike & { getMemoryOffset(id: object): number };
  const { segments, inner, outShape } = geometry(x, segmentIds, numSegments);
  const out = wasm.makeOutput(outShape, x.dtype);
  // Views are taken after makeOutput: allocating may grow (and so move) the wasm heap.
  wasm.typedArrayFromHeap(out).fill(0);
  const simd = x.dtype === 'float32' && inner % 4 === 0 ? simdKernelsFor(backend) : null;
  if (simd) {
    const address = (t: TensorInfo) => wasm.getMemoryOffset(t.dataId);
    simd.segmentSum(address(x), address(segmentIds), segments, inner, numSegments, address(out));
  } else {
    const ids = (wasm.typedArrayFromHeap(segmentIds) as Int32Array).subarray(0, segments);
    sumRows(wasm.typedArrayFromHeap(x) as Values, ids, inner, numSegments, wasm.typedArrayFromHeap(out) as Values);
  }
  return out;
};

interface CpuLike {
  readSync(dataId: object): Values;
  makeTensorInfo(shape: number[], dtype: 'float32' | 'int32', values: Values): TensorInfo;
}

const cpuKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo };
  const { numSegments } = attrs as unknown as UnsortedSegmentSumAttrs;
  const cpu = backend as unknown as CpuLike;
  const { inner, outShape } = geometry(x, segmentIds, numSegments);
  const target = x.dtype === 'float32' ? new Float32Array(util.sizeFromShape(outShape)) : new Int32Array(util.sizeFromShape(outShape));
  sumRows(cpu.readSync(x.dataId), Int32Array.from(cpu.readSync(segmentIds.dataId)), inner, numSegments, target);
  return cpu.makeTensorInfo(outShape, x.dtype as 'float32' | 'int32', target);
};

/** Registers the kernel for wasm (where it is missing) and swaps it in for cpu (once each). */
export function registerUnsortedSegmentSum(backendName: 'wasm' | 'cpu'): void {
  const existing = getKernel(UnsortedSegmentSum, backendName);
  const kernelFunc = backendName === 'wasm' ? wasmKernel : cpuKernel;
  if (existing?.kernelFunc === kernelFunc) return;
  if (existing) unregisterKernel(UnsortedSegmentSum, backendName);
  registerKernel({ kernelName: UnsortedSegmentSum, backendName, kernelFunc });
}
