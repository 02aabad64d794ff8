/**
 * Kernels nextbuy adds to or swaps into the tfjs backends it trains on: the one tfjs-backend-wasm lacks
 * (UnsortedSegmentSum, the gradient of every embedding lookup), the fused LSTM recurrence, and faster
 * versions of a few existing kernels, each found by profiling LSTM training.
 */
import { registerRowGatherForWasm } from './gather.js';
import { registerSharedIdentityForWasm } from './identity.js';
import { registerLstmKernels } from './lstm-recurrence.js';
import { registerFastMatMulForWasm } from './matmul.js';
import { registerFastSliceForWasm } from './slice.js';
import { registerUnsortedSegmentSum } from './unsorted-segment-sum.js';

/**
 * Call after importing tfjs-backend-wasm and before using it; idempotent. NEXTBUY_WASM_KERNELS=stock adds
 * only the missing UnsortedSegmentSum and leaves tfjs's kernels as they are (for before/after benchmarks).
 */
export function registerWasmKernels(): void {
  registerUnsortedSegmentSum('wasm');
  if (process.env.NEXTBUY_WASM_KERNELS === 'stock') return;
  registerFastSliceForWasm();
  registerFastMatMulForWasm();
  registerRowGatherForWasm();
  registerSharedIdentityForWasm();
  registerLstmKernels('wasm');
}

/** The plain JavaScript backend gets the fused LSTM kernels and a linear-time UnsortedSegmentSum too. */
export function registerCpuKernels(): void {
  registerUnsortedSegmentSum('cpu');
  registerLstmKernels('cpu');
}
