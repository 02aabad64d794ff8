/**
 * Slice, SplitV and Unpack for tfjs-backend-wasm, replacing its own. Its Slice reads the whole input out of
 * the wasm heap (readSync copies) for every slice, so taking one time step of a [steps, batch, 4·units]
 * tensor costs a copy of all steps — unstacking 50 steps of a training batch took ~400 ms. These read
 * views of the heap and copy only the slice, one contiguous run at a time. Strings keep the original kernels.
 */
import {
  backend_util,
  getKernel,
  registerKernel,
  Slice,
  slice_util,
  SplitV,
  unregisterKernel,
  Unpack,
  util,
  type KernelConfig,
  type KernelFunc,
  type SliceAttrs,
  type SplitVAttrs,
  type TensorInfo,
  type UnpackAttrs,
} from '@tensorflow/tfjs';

type Heap = Float32Array | Int32Array | Uint8Array;

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: TensorInfo['dtype']): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Heap;
}

/** Copies x[begin : begin + size] (row-major) into out, in runs as long as the slice allows. */
function copySlice(x: Heap, shape: number[], begin: number[], size: number[], out: Heap): void {
  const rank = shape.length;
  if (rank === 0) {
    out[0] = x[0]!;
    return;
  }
  const strides = new Array<number>(rank);
  strides[rank - 1] = 1;
  for (let d = rank - 2; d >= 0; d--) strides[d] = strides[d + 1]! * shape[d + 1]!;
  // Dimensions taken whole at the end of the shape merge into one contiguous run.
  let d = rank - 1;
  while (d > 0 && size[d] === shape[d]) d--;
  const run = size[d]! * strides[d]!;
  const outer = size.slice(0, d);
  const count = outer.reduce((a, b) => a * b, 1);
  const index = new Array<number>(d).fill(0);
  let at = 0;
  for (let n = 0; n < count; n++) {
    let offset = begin[d]! * strides[d]!;
    for (let j = 0; j < d; j++) offset += (begin[j]! + index[j]!) * strides[j]!;
    out.set(x.subarray(offset, offset + run), at);
    at += run;
    for (let j = d - 1; j >= 0; j--) {
      if (++index[j]! < outer[j]!) break;
      index[j] = 0;
    }
  }
}

function sliceOne(backend: WasmBackendLike, x: TensorInfo, begin: number[], size: number[], outShape = size): TensorInfo {
  const out = backend.makeOutput(outShape, x.dtype);
  if (util.sizeFromShape(size) > 0) copySlice(backend.typedArrayFromHeap(x), x.shape, begin, size, backend.typedArrayFromHeap(out));
  return out;
}

function replacements(original: Map<string, KernelFunc>): KernelConfig[] {
  const fallback = (name: string, args: Parameters<KernelFunc>[0]) => original.get(name)!(args);
  const sliceKernel: KernelFunc = (args) => {
    const x = args.inputs.x as TensorInfo;
    if (x.dtype === 'string') return fallback(Slice, args);
    const { begin, size } = args.attrs as unknown as SliceAttrs;
    const [b, s] = slice_util.parseSliceParams(x as never, begin, size);
    return sliceOne(args.backend as unknown as WasmBackendLike, x, b!, s!);
  };
  const splitKernel: KernelFunc = (args) => {
    const x = args.inputs.x as TensorInfo;
    if (x.dtype === 'string') return fallback(SplitV, args);
    const { numOrSizeSplits, axis } = args.attrs as unknown as SplitVAttrs;
    const a = util.parseAxisParam(axis, x.shape)[0]!;
    const sizes = backend_util.prepareSplitSize(x as never, numOrSizeSplits, a);
    const begin = new Array<number>(x.shape.length).fill(0);
    return sizes.map((n) => {
      const size = [...x.shape];
      size[a] = n;
      const out = sliceOne(args.backend as unknown as WasmBackendLike, x, begin, size);
      begin[a]! += n;
      return out;
    });
  };
  const unpackKernel: KernelFunc = (args) => {
    const value = args.inputs.value as TensorInfo;
    if (value.dtype === 'string') return fallback(Unpack, args);
    let { axis } = args.attrs as unknown as UnpackAttrs;
    if (axis < 0) axis += value.shape.length;
    const outShape = value.shape.filter((_, i) => i !== axis);
    const size = [...value.shape];
    size[axis] = 1;
    const begin = new Array<number>(value.shape.length).fill(0);
    return Array.from({ length: value.shape[axis]! }, (_, i) => {
      begin[axis] = i;
      return sliceOne(args.backend as unknown as WasmBackendLike, value, begin, size, outShape);
    });
  };
  return [
    { kernelName: Slice, backendName: 'wasm', kernelFunc: sliceKernel },
    { kernelName: SplitV, backendName: 'wasm', kernelFunc: splitKernel },
    { kernelName: Unpack, backendName: 'wasm', kernelFunc: unpackKernel },
  ];
}

let installed = false;

/** Swaps in the view-based kernels (once). */
export function registerFastSliceForWasm(): void {
  if (installed) return;
  const original = new Map<string, KernelFunc>();
  for (const name of [Slice, SplitV, Unpack]) {
    const k = getKernel(name, 'wasm');
    if (!k) continue;
    original.set(name, k.kernelFunc);
    unregisterKernel(name, 'wasm');
  }
  for (const config of replacements(original)) registerKernel(config);
  installed = true;
}

