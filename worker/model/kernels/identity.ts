/**
 * Identity — and Transpose with an identity permutation — for tfjs-backend-wasm, sharing the input's memory
 * (reference-counted, as the JavaScript backend does) instead of copying it. tf.clone runs Identity, and a
 * custom gradient clones every tensor it saves for the backward pass (for the LSTM, ~23 MB per training
 * step); every embedding gradient runs a no-op Transpose on a [tokens, width] tensor, twice. tfjs tensors are
 * immutable, so sharing is safe; strings keep the original kernels.
 */
import { getKernel, Identity, registerKernel, Transpose, unregisterKernel, type KernelFunc, type TensorInfo, type TransposeAttrs } from '@tensorflow/tfjs';

let installed = false;

function share(args: Parameters<KernelFunc>[0], x: TensorInfo): TensorInfo {
  (args.backend as unknown as { incRef(dataId: object): void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

export function registerSharedIdentityForWasm(): void {
  if (installed) return;
  const identity = getKernel(Identity, 'wasm');
  const transpose = getKernel(Transpose, 'wasm');
  if (!identity || !transpose) return;
  const copy = identity.kernelFunc as KernelFunc;
  const permute = transpose.kernelFunc as KernelFunc;
  const identityFunc: KernelFunc = (args) => {
    const x = args.inputs.x as TensorInfo;
    return x.dtype === 'string' ? copy(args) : share(args, x);
  };
  const transposeFunc: KernelFunc = (args) => {
    const x = args.inputs.x as TensorInfo;
    const { perm } = args.attrs as unknown as TransposeAttrs;
    return x.dtype !== 'string' && perm.every((p, i) => p === i) ? share(args, x) : permute(args);
  };
  unregisterKernel(Identity, 'wasm');
  registerKernel({ kernelName: Identity, backendName: 'wasm', kernelFunc: identityFunc });
  unregisterKernel(Transpose, 'wasm');
  registerKernel({ kernelName: Transpose, backendName: 'wasm', setupFunc: transpose.setupFunc, kernelFunc: transposeFunc });
  installed = true;
}
