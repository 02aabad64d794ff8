/**
 * WebAssembly SIMD kernels (4 floats per instruction), assembled at startup by wasm-emit.ts and run
 * directly on tfjs-backend-wasm's memory (the module imports it), so a call costs no copies: the per-step
 * gate arithmetic of the LSTM, and the segment sum behind every embedding gradient. sigmoid(x) = 1 / (1 + e^−x) and tanh(x) = 2·sigmoid(2x) − 1 with a
 * Cephes-style e^x (range reduction by powers of 2, degree-6 polynomial): within a few float32 ulps of
 * Math.exp, about 1e-7 absolute on the activations.
 *
 *   forward_step(x, r, cPrev, gates, c, tc, h, hNext, B, H)
 *     z = x + r (both [B, 4H]); i, f, o = sigmoid, g = tanh; c = f·cPrev + i·g; tc = tanh(c); h = o·tc
 *     writes gates [B, 4H] (i, f, g, o), c, tc, h and hNext [B, H]
 *   backward_step(dy, dr, gates, cPrev, tc, dcNext, dz, dx, B, H)
 *     dh = dy + dr; dc = dcNext + dh·o·(1 − tc²); dz = [dc·g·i(1−i), dc·cPrev·f(1−f), dc·i(1−g²), dh·tc·o(1−o)]
 *     writes dz and dx (both [B, 4H]) and dcNext ← dc·f
 *   batch_matmul(a, b, out, batch, M, K, N, strideA, strideB)
 *     out[i] = a[i] (M×K) · b[i] (K×N) for each of `batch` pairs; strides are bytes between pairs (0 broadcasts)
 *   matmul_transpose_a(a, b, out, R, M, N)
 *     out (M×N) = aᵀ·b for a (R×M) and b (R×N): the weight gradients xᵀ·dy, with no transposed copy of
 *     either operand and nothing to pack; N must be a multiple of 8
 *   segment_sum(values, ids, rows, width, segments, out)
 *     out[ids[r]] += values[r] for every row r with 0 ≤ ids[r] < segments (out is not cleared first)
 * All arguments are byte addresses except B, H, rows, width and segments; H and width must be multiples of 4.
 */
import {
  add, assemble, bump, div, f32, fadd, fload, fmul, fsplat, fstore, FunctionBuilder, get, i32, iadd, imul, intAdd, intShl, leU, load, loadSplat, ltU, loop, max, min, mul,
  nearest, set, splat, store, storeAt, sub, truncToInt, whileLoop,
  type Expr,
} from './wasm-emit.js';

export interface SimdKernels {
  forwardStep(x: number, r: number, cPrev: number, gates: number, c: number, tc: number, h: number, hNext: number, B: number, H: number): void;
  backwardStep(dy: number, dr: number, gates: number, cPrev: number, tc: number, dcNext: number, dz: number, dx: number, B: number, H: number): void;
  segmentSum(values: number, ids: number, rows: number, width: number, segments: number, out: number): void;
  batchMatmul(a: number, b: number, out: number, batch: number, M: number, K: number, N: number, strideA: number, strideB: number): void;
  matmulTransposeA(a: number, b: number, out: number, R: number, M: number, N: number): void;
}

/** e^x for 4 lanes (x clamped to the float32 range of e^x). */
function exp(f: FunctionBuilder, x: Expr, t: { a: number; n: number; r: number }): Expr {
  set(f, t.a, min(max(x, splat(-87.3)), splat(88.3)));
  set(f, t.n, nearest(mul(get(t.a), splat(Math.LOG2E))));
  // r = a − n·ln2, with ln2 split in two so the product is exact
  set(f, t.r, sub(sub(get(t.a), mul(get(t.n), splat(0.693359375))), mul(get(t.n), splat(-2.12194440e-4))));
  const r = get(t.r);
  let p: Expr = splat(1.9875691500e-4);
  for (const c of [1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1]) p = add(mul(p, r), splat(c));
  const poly = add(add(mul(p, mul(r, r)), r), splat(1));
  // 2^n built in the exponent bits: (n + 127) << 23, read as float32 (v128 is untyped)
  const scale = intShl(intAdd(truncToInt(get(t.n)), (fb) => { i32(127)(fb); fb.simd(0x11); }), 23);
  return mul(poly, scale);
}

function sigmoid(f: FunctionBuilder, x: Expr, t: { a: number; n: number; r: number }): Expr {
  const e = f.local('v128');
  set(f, e, exp(f, sub(splat(0), x), t));
  return div(splat(1), add(splat(1), get(e)));
}

function tanh(f: FunctionBuilder, x: Expr, t: { a: number; n: number; r: number }): Expr {
  const s = f.local('v128');
  set(f, s, sigmoid(f, mul(splat(2), x), t));
  return sub(mul(splat(2), get(s)), splat(1));
}

function forwardStep(): FunctionBuilder {
  const f = new FunctionBuilder('forward_step', Array(10).fill('i32'));
  const [x, r, cPrev, gates, c, tc, h, hNext, B, H] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const b = f.local('i32');
  const j = f.local('i32');
  const block = f.local('i32'); // H·4 bytes: one gate block
  const at = f.local('i32'); // byte offset within the [B, 4H] rows
  const cell = f.local('i32'); // byte offset within the [B, H] rows
  const t = { a: f.local('v128'), n: f.local('v128'), r: f.local('v128') };
  const [vi, vf, vg, vo, vc, vtc] = [f.local('v128'), f.local('v128'), f.local('v128'), f.local('v128'), f.local('v128'), f.local('v128')];
  set(f, block, imul(get(H), i32(4)));
  set(f, at, i32(0));
  set(f, cell, i32(0));
  loop(f, b, get(B), () => {
    loop(f, j, div4(get(H)), () => {
      const z = (k: number) => {
        const off = k === 0 ? get(at) : iadd(get(at), imul(get(block), i32(k)));
        return add(load(iadd(get(x), off)), load(iadd(get(r), off)));
      };
      set(f, vi, sigmoid(f, z(0), t));
      set(f, vf, sigmoid(f, z(1), t));
      set(f, vg, tanh(f, z(2), t));
      set(f, vo, sigmoid(f, z(3), t));
      set(f, vc, add(mul(get(vf), load(iadd(get(cPrev), get(cell)))), mul(get(vi), get(vg))));
      set(f, vtc, tanh(f, get(vc), t));
      [vi, vf, vg, vo].forEach((v, k) => store(f, iadd(get(gates), k === 0 ? get(at) : iadd(get(at), imul(get(block), i32(k)))), get(v)));
      store(f, iadd(get(c), get(cell)), get(vc));
      store(f, iadd(get(tc), get(cell)), get(vtc));
      store(f, iadd(get(h), get(cell)), mul(get(vo), get(vtc)));
      store(f, iadd(get(hNext), get(cell)), mul(get(vo), get(vtc)));
      bump(f, at, i32(16));
      bump(f, cell, i32(16));
    });
    bump(f, at, imul(get(block), i32(3))); // past the f, g, o blocks of this row
  });
  return f;
}

function backwardStep(): FunctionBuilder {
  const f = new FunctionBuilder('backward_step', Array(10).fill('i32'));
  const [dy, dr, gates, cPrev, tc, dcNext, dz, dx, B, H] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const b = f.local('i32');
  const j = f.local('i32');
  const block = f.local('i32');
  const at = f.local('i32');
  const cell = f.local('i32');
  const dh = f.local('v128');
  const dc = f.local('v128');
  const vi = f.local('v128');
  const vf = f.local('v128');
  const vg = f.local('v128');
  const vo = f.local('v128');
  const vtc = f.local('v128');
  const one = splat(1);
  const gateAt = (k: number) => (k === 0 ? get(at) : iadd(get(at), imul(get(block), i32(k))));
  set(f, block, imul(get(H), i32(4)));
  set(f, at, i32(0));
  set(f, cell, i32(0));
  loop(f, b, get(B), () => {
    loop(f, j, div4(get(H)), () => {
      set(f, dh, add(load(iadd(get(dy), get(cell))), load(iadd(get(dr), get(cell)))));
      [vi, vf, vg, vo].forEach((v, k) => set(f, v, load(iadd(get(gates), gateAt(k)))));
      set(f, vtc, load(iadd(get(tc), get(cell))));
      set(f, dc, add(load(iadd(get(dcNext), get(cell))), mul(mul(get(dh), get(vo)), sub(one, mul(get(vtc), get(vtc))))));
      const grads: Expr[] = [
        mul(mul(get(dc), get(vg)), mul(get(vi), sub(one, get(vi)))),
        mul(mul(get(dc), load(iadd(get(cPrev), get(cell)))), mul(get(vf), sub(one, get(vf)))),
        mul(mul(get(dc), get(vi)), sub(one, mul(get(vg), get(vg)))),
        mul(mul(get(dh), get(vtc)), mul(get(vo), sub(one, get(vo)))),
      ];
      grads.forEach((g, k) => {
        const v = f.local('v128');
        set(f, v, g);
        store(f, iadd(get(dz), gateAt(k)), get(v));
        store(f, iadd(get(dx), gateAt(k)), get(v));
      });
      store(f, iadd(get(dcNext), get(cell)), mul(get(dc), get(vf)));
      bump(f, at, i32(16));
      bump(f, cell, i32(16));
    });
    bump(f, at, imul(get(block), i32(3)));
  });
  return f;
}

function segmentSum(): FunctionBuilder {
  const f = new FunctionBuilder('segment_sum', Array(6).fill('i32'));
  const [values, ids, rows, width, segments, out] = [0, 1, 2, 3, 4, 5];
  const r = f.local('i32');
  const k = f.local('i32');
  const id = f.local('i32');
  const from = f.local('i32'); // byte address of this row of values
  const to = f.local('i32'); // byte address of the target row of out
  const rowBytes = f.local('i32');
  set(f, rowBytes, imul(get(width), i32(4)));
  set(f, from, get(values));
  loop(f, r, get(rows), () => {
    set(f, id, (fb) => {
      iadd(get(ids), imul(get(r), i32(4)))(fb);
      fb.emit(0x28, 2, 0); // i32.load align 4
    });
    // if (id <u segments): ids out of range (negative included) are dropped
    get(id)(f);
    get(segments)(f);
    f.emit(0x49, 0x04, 0x40); // i32.lt_u; if
    set(f, to, iadd(get(out), imul(get(id), get(rowBytes))));
    loop(f, k, div4(get(width)), () => {
      const at = iadd(get(to), imul(get(k), i32(16)));
      store(f, at, add(load(at), load(iadd(get(from), imul(get(k), i32(16))))));
    });
    f.emit(0x0b); // end if
    bump(f, from, get(rowBytes));
  });
  return f;
}

/**
 * Many small products at once (tfjs-backend-wasm runs a batch of them without XNNPACK, at ~1 GFLOP/s).
 * Each output row is built 16 columns at a time in four vector accumulators, then 4 at a time, then singly.
 */
function batchMatmul(): FunctionBuilder {
  const f = new FunctionBuilder('batch_matmul', Array(9).fill('i32'));
  const [a, b, out, batch, M, K, N, strideA, strideB] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const [bi, i, k, n] = [f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32')];
  const aRow = f.local('i32');
  const bMat = f.local('i32');
  const oRow = f.local('i32');
  const bk = f.local('i32'); // address of b[k][n]
  const rowBytes = f.local('i32'); // N·4
  const av = f.local('v128');
  const acc = [f.local('v128'), f.local('v128'), f.local('v128'), f.local('v128')];
  const total = f.local('f32');
  set(f, rowBytes, imul(get(N), i32(4)));
  set(f, oRow, get(out));
  loop(f, bi, get(batch), () => {
    set(f, bMat, iadd(get(b), imul(get(bi), get(strideB))));
    loop(f, i, get(M), () => {
      set(f, aRow, iadd(iadd(get(a), imul(get(bi), get(strideA))), imul(imul(get(i), get(K)), i32(4))));
      set(f, n, i32(0));
      const kLoop = (width: number) => {
        loop(f, k, get(K), () => {
          set(f, bk, iadd(iadd(get(bMat), imul(get(k), get(rowBytes))), imul(get(n), i32(4))));
          set(f, av, fsplat(fload(iadd(get(aRow), imul(get(k), i32(4))))));
          for (let v = 0; v < width; v++) set(f, acc[v]!, add(get(acc[v]!), mul(get(av), load(get(bk), 16 * v))));
        });
      };
      for (const width of [4, 1]) {
        whileLoop(f, leU(iadd(get(n), i32(4 * width)), get(N)), () => {
          for (let v = 0; v < width; v++) set(f, acc[v]!, splat(0));
          kLoop(width);
          for (let v = 0; v < width; v++) storeAt(f, iadd(get(oRow), imul(get(n), i32(4))), 16 * v, get(acc[v]!));
          bump(f, n, i32(4 * width));
        });
      }
      whileLoop(f, ltU(get(n), get(N)), () => {
        // the last N mod 4 columns, one at a time
        set(f, total, f32(0));
        loop(f, k, get(K), () => {
          const bkn = iadd(iadd(get(bMat), imul(get(k), get(rowBytes))), imul(get(n), i32(4)));
          set(f, total, fadd(get(total), fmul(fload(iadd(get(aRow), imul(get(k), i32(4)))), fload(bkn))));
        });
        fstore(f, iadd(get(oRow), imul(get(n), i32(4))), get(total));
        bump(f, n, i32(1));
      });
      bump(f, oRow, get(rowBytes));
    });
  });
  return f;
}

/** Rows of a and b per pass over the output: both chunks stay in cache while every tile reads them. */
const TRANSPOSE_A_CHUNK = 64;

/**
 * out = aᵀ·b as a sum of outer products of the rows of a and b, in tiles of up to 4 output rows × 8
 * columns held in vector accumulators. The rows are taken in chunks, each chunk added to every tile
 * (the tiles are loaded from and stored to out once per chunk), so b is read from memory once; within a
 * chunk the tiles go down one 8-column strip at a time, so that strip of b stays in the L1 cache.
 */
function matmulTransposeA(): FunctionBuilder {
  const f = new FunctionBuilder('matmul_transpose_a', Array(6).fill('i32'));
  const [a, b, out, R, M, N] = [0, 1, 2, 3, 4, 5];
  const [r, n, m, rows, k] = [f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32'), f.local('i32')];
  const from = f.local('i32'); // first row of this chunk
  const pa = f.local('i32'); // address of a[row][m]
  const pb = f.local('i32'); // address of b[row][n]
  const po = f.local('i32'); // address of out[m][n]
  const rowA = f.local('i32'); // M·4
  const rowB = f.local('i32'); // N·4
  const av = f.local('v128');
  const bv = [f.local('v128'), f.local('v128')];
  const acc = Array.from({ length: 8 }, () => f.local('v128'));
  set(f, rowA, imul(get(M), i32(4)));
  set(f, rowB, imul(get(N), i32(4)));
  set(f, po, get(out));
  loop(f, k, div4(imul(get(M), get(N))), () => {
    store(f, get(po), splat(0));
    bump(f, po, i32(16));
  });
  set(f, from, i32(0));
  whileLoop(f, ltU(get(from), get(R)), () => {
    set(f, rows, (fb) => {
      // rows = min(R − from, CHUNK)
      sub32(get(R), get(from))(fb);
      i32(TRANSPOSE_A_CHUNK)(fb);
      sub32(get(R), get(from))(fb);
      i32(TRANSPOSE_A_CHUNK)(fb);
      fb.emit(0x49, 0x1b); // i32.lt_u; select
    });
    set(f, n, i32(0));
    whileLoop(f, ltU(get(n), get(N)), () => {
      set(f, m, i32(0));
      for (const tileRows of [4, 2, 1]) {
        whileLoop(f, leU(iadd(get(m), i32(tileRows)), get(M)), () => {
          set(f, po, iadd(get(out), imul(iadd(imul(get(m), get(N)), get(n)), i32(4))));
          for (let i = 0; i < tileRows; i++) for (let j = 0; j < 2; j++) set(f, acc[2 * i + j]!, load(iadd(get(po), imul(get(rowB), i32(i))), 16 * j));
          set(f, pa, iadd(get(a), imul(iadd(imul(get(from), get(M)), get(m)), i32(4))));
          set(f, pb, iadd(get(b), imul(iadd(imul(get(from), get(N)), get(n)), i32(4))));
          loop(f, r, get(rows), () => {
            for (let j = 0; j < 2; j++) set(f, bv[j]!, load(get(pb), 16 * j));
            for (let i = 0; i < tileRows; i++) {
              set(f, av, loadSplat(get(pa), 4 * i));
              for (let j = 0; j < 2; j++) set(f, acc[2 * i + j]!, add(get(acc[2 * i + j]!), mul(get(av), get(bv[j]!))));
            }
            bump(f, pa, get(rowA));
            bump(f, pb, get(rowB));
          });
          for (let i = 0; i < tileRows; i++) for (let j = 0; j < 2; j++) storeAt(f, iadd(get(po), imul(get(rowB), i32(i))), 16 * j, get(acc[2 * i + j]!));
          bump(f, m, i32(tileRows));
        });
      }
      bump(f, n, i32(8));
    });
    bump(f, from, i32(TRANSPOSE_A_CHUNK));
  });
  return f;
}

/** i32 subtraction. */
const sub32 = (x: Expr, y: Expr): Expr => (f) => {
  x(f);
  y(f);
  f.emit(0x6b);
};

/** H / 4 (i32 shift). */
const div4 = (h: Expr): Expr => (f) => {
  h(f);
  f.emit(0x41, 2, 0x76); // i32.const 2; i32.shr_u
};

/** The little of the WebAssembly JS API used here (the project's lib settings do not declare it). */
export interface WasmMemoryLike {
  buffer: ArrayBufferLike;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

let compiled: object | null = null;

/** The module's bytes (exported for tests). */
export function simdModuleBytes(): Uint8Array {
  return assemble([forwardStep(), backwardStep(), segmentSum(), batchMatmul(), matmulTransposeA()]);
}

/** Instantiates the kernels on the given memory; null where SIMD or a non-shared memory is unavailable. */
export function instantiateSimdKernels(memory: WasmMemoryLike): SimdKernels | null {
  try {
    if (typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer) return null;
    compiled ??= new wasmApi.Module(simdModuleBytes());
    const instance = new wasmApi.Instance(compiled, { env: { memory } });
    const e = instance.exports as unknown as {
      forward_step: SimdKernels['forwardStep'];
      backward_step: SimdKernels['backwardStep'];
      segment_sum: SimdKernels['segmentSum'];
      batch_matmul: SimdKernels['batchMatmul'];
      matmul_transpose_a: SimdKernels['matmulTransposeA'];
    };
    return { forwardStep: e.forward_step, backwardStep: e.backward_step, segmentSum: e.segment_sum, batchMatmul: e.batch_matmul, matmulTransposeA: e.matmul_transpose_a };
  } catch {
    return null;
  }
}
