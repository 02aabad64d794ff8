/** What the kernels here use of tfjs-backend-wasm's backend object (it exports no usable type for it). */
import { getKernel, type KernelFunc, type NamedAttrMap, type TensorInfo } from '@tensorflow/tfjs';

export type Heap = Float32Array | Int32Array | Uint8Array;

export interface WasmBackendLike {
  makeOutput(shape: number[], dtype: TensorInfo['dtype']): TensorInfo;
  /** A view of the tensor's memory in the wasm heap: valid until the next allocation (which may grow the heap). */
  typedArrayFromHeap(t: TensorInfo): Heap;
  disposeData(dataId: object, force?: boolean): boolean;
}

/** Calls another registered kernel directly (no engine, no tape): for use inside kernels. */
export function callKernel(name: string, backendName: string, backend: unknown, inputs: Record<string, TensorInfo>, attrs: NamedAttrMap = {}): TensorInfo {
  const kernel = getKernel(name, backendName);
  if (!kernel) throw new Error(`kernel ${name} is not registered for ${backendName}`);
  return (kernel.kernelFunc as KernelFunc)({ inputs, backend: backend as never, attrs }) as TensorInfo;
}
