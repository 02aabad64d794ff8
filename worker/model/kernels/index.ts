/**
 * Kernels nextbuy adds to or swaps into tfjs-backend-wasm: the one it lacks (UnsortedSegmentSum, the
 * gradient of every embedding lookup) and faster versions of a few it has, found by profiling LSTM training.
 */
import { registerRowGatherForWasm } from './gather.js';
import { registerSharedIdentityForWasm } from './identity.js';
import { registerLstmKernels } from './lstm-recurrence.js';
import { registerPlainMatMulForWasm } from './matmul.js';
import { registerFastSliceForWasm } from './slice.js';
import { registerUnsortedSegmentSumForWasm } from './unsorted-segment-sum.js';

/** Call after importing tfjs-backend-wasm and before using it; idempotent. */
export function registerWasmKernels(): void {
  registerUnsortedSegmentSumForWasm();
  registerFastSliceForWasm();
  registerPlainMatMulForWasm();
  registerRowGatherForWasm();
  registerSharedIdentityForWasm();
  registerLstmKernels('wasm');
}

/** The plain JavaScript backend gets the fused LSTM kernels too. */
export function registerCpuKernels(): void {
  registerLstmKernels('cpu');
}
