/**
 * The LSTM recurrence as two fused kernels (forward, and backward through time) for the wasm and plain
 * JavaScript backends. Each step's h·U runs on the backend's own matrix product (XNNPACK on wasm); the
 * gate arithmetic of the step runs as one pass straight over the tensors' memory — WebAssembly SIMD
 * (simd-kernels.ts) on wasm when the units are a multiple of 4, a JavaScript loop otherwise — instead of a
 * dozen separate tfjs ops each with its own dispatch and pass over memory.
 *
 *   NextbuyLstmForward   {preactivations [T,B,4H], recurrentKernel [H,4H]}
 *                        → [hidden [T,B,H], gates [T,B,4H] (i, f, g, o after activation), cells [T,B,H], tanh(cells) [T,B,H]]
 *   NextbuyLstmBackward  {dy [T,B,H], recurrentKernel, gates, cells, cellTanh, hidden} → [d preactivations, d recurrentKernel]
 */
import { BatchMatMul, getKernel, registerKernel, Transpose, util, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs';
import { simdKernelsFor } from './simd-memory.js';
import type { SimdKernels } from './simd-kernels.js';
import { callKernel } from './wasm-backend.js';

export const LSTM_FORWARD = 'NextbuyLstmForward';
export const LSTM_BACKWARD = 'NextbuyLstmBackward';

/** The little a fused kernel needs from a backend: allocate, see memory, multiply, free. */
interface Memory {
  /** The SIMD step kernels and byte addresses of tensors, on wasm where they could start. */
  simd: { kernels: SimdKernels; address(t: TensorInfo): number } | null;
  alloc(shape: number[]): TensorInfo;
  /** A view of the tensor's floats; on wasm only valid until the next alloc or matmul. */
  view(t: TensorInfo): Float32Array;
  matmul(a: TensorInfo, b: TensorInfo): TensorInfo;
  transpose(t: TensorInfo): TensorInfo;
  free(t: TensorInfo): void;
}

interface WasmLike {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
  disposeData(dataId: object): boolean;
  getMemoryOffset(dataId: object): number;
}

interface CpuLike {
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
  readSync(dataId: object): Float32Array;
  disposeData(dataId: object): boolean;
}

function memoryOf(backendName: 'wasm' | 'cpu', backend: unknown): Memory {
  const call = (name: string, inputs: Record<string, TensorInfo>, attrs: Record<string, unknown>) => callKernel(name, backendName, backend, inputs, attrs as never);
  const common = {
    matmul: (a: TensorInfo, b: TensorInfo) => call(BatchMatMul, { a, b }, { transposeA: false, transposeB: false }),
    transpose: (t: TensorInfo) => call(Transpose, { x: t }, { perm: [1, 0] }),
  };
  if (backendName === 'wasm') {
    const b = backend as WasmLike;
    const kernels = simdKernelsFor(backend);
    return {
      ...common,
      simd: kernels ? { kernels, address: (t) => b.getMemoryOffset(t.dataId) } : null,
      alloc: (shape) => b.makeOutput(shape, 'float32'),
      view: (t) => b.typedArrayFromHeap(t),
      free: (t) => void b.disposeData(t.dataId),
    };
  }
  const b = backend as CpuLike;
  return {
    ...common,
    simd: null,
    alloc: (shape) => b.makeTensorInfo(shape, 'float32', new Float32Array(util.sizeFromShape(shape))),
    view: (t) => b.readSync(t.dataId),
    free: (t) => void b.disposeData(t.dataId),
  };
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

function forward(mem: Memory, xp: TensorInfo, u: TensorInfo): TensorInfo[] {
  const [T, B, G] = xp.shape as [number, number, number];
  const H = G / 4;
  const hidden = mem.alloc([T, B, H]);
  const gates = mem.alloc([T, B, G]);
  const cells = mem.alloc([T, B, H]);
  const tanhs = mem.alloc([T, B, H]);
  let hPrev: TensorInfo | null = null;
  for (let t = 0; t < T; t++) {
    const hu = hPrev ? mem.matmul(hPrev, u) : null;
    const hNext = mem.alloc([B, H]);
    // Views last: allocation may move wasm memory.
    const X = mem.view(xp);
    const R = hu ? mem.view(hu) : null;
    const A = mem.view(gates);
    const C = mem.view(cells);
    const TC = mem.view(tanhs);
    const HS = mem.view(hidden);
    const HN = mem.view(hNext);
    const xOff = t * B * G;
    const sOff = t * B * H;
    const pOff = (t - 1) * B * H;
    for (let b = 0; b < B; b++) {
      const zr = b * G;
      const x = xOff + zr;
      const a = xOff + zr;
      const s = sOff + b * H;
      for (let j = 0; j < H; j++) {
        let zi = X[x + j]!;
        let zf = X[x + H + j]!;
        let zg = X[x + 2 * H + j]!;
        let zo = X[x + 3 * H + j]!;
        if (R) {
          zi += R[zr + j]!;
          zf += R[zr + H + j]!;
          zg += R[zr + 2 * H + j]!;
          zo += R[zr + 3 * H + j]!;
        }
        const i = sigmoid(zi);
        const f = sigmoid(zf);
        const g = Math.tanh(zg);
        const o = sigmoid(zo);
        const c = (t > 0 ? f * C[pOff + b * H + j]! : 0) + i * g;
        const tc = Math.tanh(c);
        const h = o * tc;
        A[a + j] = i;
        A[a + H + j] = f;
        A[a + 2 * H + j] = g;
        A[a + 3 * H + j] = o;
        C[s + j] = c;
        TC[s + j] = tc;
        HS[s + j] = h;
        HN[b * H + j] = h;
      }
    }
    if (hu) mem.free(hu);
    if (hPrev) mem.free(hPrev);
    hPrev = hNext;
  }
  if (hPrev) mem.free(hPrev);
  return [hidden, gates, cells, tanhs];
}

function backward(mem: Memory, dy: TensorInfo, u: TensorInfo, gates: TensorInfo, cells: TensorInfo, tanhs: TensorInfo, hidden: TensorInfo): TensorInfo[] {
  const [T, B, G] = gates.shape as [number, number, number];
  const H = G / 4;
  const uT = mem.transpose(u);
  const dxp = mem.alloc([T, B, G]);
  const dcNext = new Float32Array(B * H);
  let dhRec: TensorInfo | null = null;
  for (let t = T - 1; t >= 0; t--) {
    const dz = mem.alloc([B, G]);
    const DY = mem.view(dy);
    const A = mem.view(gates);
    const C = mem.view(cells);
    const TC = mem.view(tanhs);
    const DX = mem.view(dxp);
    const DZ = mem.view(dz);
    const DR = dhRec ? mem.view(dhRec) : null;
    const sOff = t * B * H;
    const pOff = (t - 1) * B * H;
    const gOff = t * B * G;
    for (let b = 0; b < B; b++) {
      const s = sOff + b * H;
      const zr = b * G;
      for (let j = 0; j < H; j++) {
        const k = b * H + j;
        const dh = DY[s + j]! + (DR ? DR[k]! : 0);
        const i = A[gOff + zr + j]!;
        const f = A[gOff + zr + H + j]!;
        const g = A[gOff + zr + 2 * H + j]!;
        const o = A[gOff + zr + 3 * H + j]!;
        const tc = TC[s + j]!;
        const cPrev = t > 0 ? C[pOff + k]! : 0;
        const dc = dcNext[k]! + dh * o * (1 - tc * tc);
        const di = dc * g * i * (1 - i);
        const df = dc * cPrev * f * (1 - f);
        const dg = dc * i * (1 - g * g);
        const dO = dh * tc * o * (1 - o);
        DZ[zr + j] = di;
        DZ[zr + H + j] = df;
        DZ[zr + 2 * H + j] = dg;
        DZ[zr + 3 * H + j] = dO;
        dcNext[k] = dc * f;
      }
    }
    DX.set(DZ, gOff);
    if (dhRec) mem.free(dhRec);
    dhRec = t > 0 ? mem.matmul(dz, uT) : null;
    mem.free(dz);
  }
  const dU = recurrentGradient(mem, hidden, dxp);
  mem.free(uT);
  return [dxp, dU];
}

/** dU = Σ_t h_{t-1}ᵀ dz_t as one product: [H, T·B] × [T·B, 4H], with h_{-1} = 0. */
function recurrentGradient(mem: Memory, hidden: TensorInfo, dz: TensorInfo): TensorInfo {
  const [T, B, H] = hidden.shape as [number, number, number];
  const G = 4 * H;
  const hPrevT = mem.alloc([H, T * B]);
  const HT = mem.view(hPrevT);
  const HS = mem.view(hidden);
  const n = T * B;
  HT.fill(0);
  for (let t = 1; t < T; t++) {
    for (let b = 0; b < B; b++) {
      const from = ((t - 1) * B + b) * H;
      const col = t * B + b;
      for (let j = 0; j < H; j++) HT[j * n + col] = HS[from + j]!;
    }
  }
  const dU = mem.matmul(hPrevT, { dataId: dz.dataId, shape: [T * B, G], dtype: 'float32' });
  mem.free(hPrevT);
  return dU;
}

function zeros(mem: Memory, shape: number[]): TensorInfo {
  const t = mem.alloc(shape);
  mem.view(t).fill(0);
  return t;
}

function forwardSimd(mem: Memory, xp: TensorInfo, u: TensorInfo): TensorInfo[] {
  const { kernels: k, address } = mem.simd!;
  const [T, B, G] = xp.shape as [number, number, number];
  const H = G / 4;
  const stepG = B * G * 4; // bytes per step of a [T, B, 4H] tensor
  const stepH = B * H * 4;
  const hidden = mem.alloc([T, B, H]);
  const gates = mem.alloc([T, B, G]);
  const cells = mem.alloc([T, B, H]);
  const tanhs = mem.alloc([T, B, H]);
  const noRecurrence = zeros(mem, [B, G]);
  const noCell = zeros(mem, [B, H]);
  let hPrev: TensorInfo | null = null;
  for (let t = 0; t < T; t++) {
    const hu = hPrev ? mem.matmul(hPrev, u) : noRecurrence;
    const hNext = mem.alloc([B, H]);
    const cPrev = t > 0 ? address(cells) + (t - 1) * stepH : address(noCell);
    k.forwardStep(address(xp) + t * stepG, address(hu), cPrev, address(gates) + t * stepG, address(cells) + t * stepH, address(tanhs) + t * stepH, address(hidden) + t * stepH, address(hNext), B, H);
    if (hu !== noRecurrence) mem.free(hu);
    if (hPrev) mem.free(hPrev);
    hPrev = hNext;
  }
  for (const t of [hPrev, noRecurrence, noCell]) if (t) mem.free(t);
  return [hidden, gates, cells, tanhs];
}

function backwardSimd(mem: Memory, dy: TensorInfo, u: TensorInfo, gates: TensorInfo, cells: TensorInfo, tanhs: TensorInfo, hidden: TensorInfo): TensorInfo[] {
  const { kernels: k, address } = mem.simd!;
  const [T, B, G] = gates.shape as [number, number, number];
  const H = G / 4;
  const stepG = B * G * 4;
  const stepH = B * H * 4;
  const uT = mem.transpose(u);
  const dxp = mem.alloc([T, B, G]);
  const dcNext = zeros(mem, [B, H]);
  const none = zeros(mem, [B, H]);
  let dhRec: TensorInfo | null = null;
  for (let t = T - 1; t >= 0; t--) {
    const dz = mem.alloc([B, G]);
    const cPrev = t > 0 ? address(cells) + (t - 1) * stepH : address(none);
    k.backwardStep(address(dy) + t * stepH, address(dhRec ?? none), address(gates) + t * stepG, cPrev, address(tanhs) + t * stepH, address(dcNext), address(dz), address(dxp) + t * stepG, B, H);
    if (dhRec) mem.free(dhRec);
    dhRec = t > 0 ? mem.matmul(dz, uT) : null;
    mem.free(dz);
  }
  // dU = Σ_t h_{t-1}ᵀ dz_t: hidden rows of steps 0..T-2 against dz rows of steps 1..T-1 (h_{-1} = 0)
  const dU = mem.alloc([H, G]);
  k.matmulTransposeA(address(hidden), address(dxp) + stepG, address(dU), (T - 1) * B, H, G);
  for (const t of [uT, dcNext, none]) mem.free(t);
  return [dxp, dU];
}

function kernels(backendName: 'wasm' | 'cpu'): { forward: KernelFunc; backward: KernelFunc } {
  return {
    forward: ({ inputs, backend }) => {
      const { preactivations, recurrentKernel } = inputs as Record<string, TensorInfo>;
      const mem = memoryOf(backendName, backend);
      const units = recurrentKernel!.shape[0]!;
      return mem.simd && units % 4 === 0 ? forwardSimd(mem, preactivations!, recurrentKernel!) : forward(mem, preactivations!, recurrentKernel!);
    },
    backward: ({ inputs, backend }) => {
      const { dy, recurrentKernel, gates, cells, cellTanh, hidden } = inputs as Record<string, TensorInfo>;
      const mem = memoryOf(backendName, backend);
      const units = recurrentKernel!.shape[0]!;
      const run = mem.simd && units % 4 === 0 ? backwardSimd : backward;
      return run(mem, dy!, recurrentKernel!, gates!, cells!, cellTanh!, hidden!);
    },
  };
}

/** Registers the fused kernels for a backend (once); other backends use the op-by-op recurrence. */
export function registerLstmKernels(backendName: 'wasm' | 'cpu'): void {
  if (getKernel(LSTM_FORWARD, backendName)) return;
  const k = kernels(backendName);
  registerKernel({ kernelName: LSTM_FORWARD, backendName, kernelFunc: k.forward });
  registerKernel({ kernelName: LSTM_BACKWARD, backendName, kernelFunc: k.backward });
}
