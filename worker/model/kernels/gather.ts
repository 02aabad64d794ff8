/**
 * GatherV2 for tfjs-backend-wasm, for the embedding lookup case (rows of a table: axis 0, no batch dims).
 * Its own kernel walks every element through generic strides; copying whole rows is several times faster.
 * Other cases, and out-of-range ids (which it reports), go to the original kernel.
 */
import { GatherV2, getKernel, registerKernel, unregisterKernel, util, type GatherV2Attrs, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs';
import type { WasmBackendLike } from './wasm-backend.js';

let installed = false;

export function registerRowGatherForWasm(): void {
  if (installed) return;
  const original = getKernel(GatherV2, 'wasm');
  if (!original) return;
  const generic = original.kernelFunc as KernelFunc;
  const kernelFunc: KernelFunc = (args) => {
    const { x, indices } = args.inputs as { x: TensorInfo; indices: TensorInfo };
    const { axis, batchDims } = args.attrs as unknown as GatherV2Attrs;
    const rowAxis = util.parseAxisParam(axis, x.shape)[0] === 0 && (batchDims ?? 0) === 0;
    if (!rowAxis || x.dtype === 'string' || indices.dtype !== 'int32' || x.shape.length === 0) return generic(args);
    const backend = args.backend as unknown as WasmBackendLike;
    const rows = x.shape[0]!;
    const width = util.sizeFromShape(x.shape.slice(1));
    const count = util.sizeFromShape(indices.shape);
    const ids = backend.typedArrayFromHeap(indices) as Int32Array;
    for (let i = 0; i < count; i++) if (ids[i]! < 0 || ids[i]! >= rows) return generic(args); // it throws the proper error
    const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    const table = backend.typedArrayFromHeap(x);
    const target = backend.typedArrayFromHeap(out);
    const at = backend.typedArrayFromHeap(indices) as Int32Array; // re-read: makeOutput may have moved the heap
    for (let i = 0; i < count; i++) {
      const from = at[i]! * width;
      target.set(table.subarray(from, from + width), i * width);
    }
    return out;
  };
  unregisterKernel(GatherV2, 'wasm');
  registerKernel({ kernelName: GatherV2, backendName: 'wasm', setupFunc: original.setupFunc, kernelFunc });
  installed = true;
}
