/**
 * A very small WebAssembly assembler: enough to emit SIMD loops over memory imported from tfjs-backend-wasm.
 * Expressions are functions that emit code leaving one value on the stack, so kernels read like formulas
 * (`mul(get(a), add(get(b), one))`) while the output is plain stack-machine code.
 */

export type ValType = 'i32' | 'f32' | 'v128';
const typeCode = (t: ValType) => ({ i32: 0x7f, f32: 0x7d, v128: 0x7b })[t];

export type Expr = (f: FunctionBuilder) => void;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const utf8 = (s: string) => [...new TextEncoder().encode(s)];
const name = (s: string) => [...uleb(utf8(s).length), ...utf8(s)];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];

/** SIMD opcodes (0xFD prefix) of the final WebAssembly SIMD specification. */
const SIMD = {
  load: 0x00,
  load32_splat: 0x09,
  store: 0x0b,
  f32x4_splat: 0x13,
  f32x4_nearest: 0x6a,
  i32x4_shl: 0xab,
  i32x4_add: 0xae,
  f32x4_add: 0xe4,
  f32x4_sub: 0xe5,
  f32x4_mul: 0xe6,
  f32x4_div: 0xe7,
  f32x4_min: 0xe8,
  f32x4_max: 0xe9,
  i32x4_trunc_sat_f32x4_s: 0xf8,
} as const;

export class FunctionBuilder {
  readonly code: number[] = [];
  private readonly locals: ValType[] = [];
  constructor(
    readonly name: string,
    readonly params: ValType[],
  ) {}

  /** A new local; parameters are locals 0..params.length-1. */
  local(type: ValType): number {
    this.locals.push(type);
    return this.params.length + this.locals.length - 1;
  }

  emit(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }

  simd(op: number): this {
    return this.emit(0xfd, ...uleb(op));
  }

  body(): number[] {
    const groups = this.locals.map((t) => [1, typeCode(t)]);
    return [...vec(groups), ...this.code, 0x0b];
  }
}

// ---- expressions ----------------------------------------------------------------------------------
export const get = (local: number): Expr => (f) => void f.emit(0x20, ...uleb(local));
export const i32 = (v: number): Expr => (f) => void f.emit(0x41, ...sleb(v));
export const f32 = (v: number): Expr => (f) => {
  const b = new Uint8Array(Float32Array.of(v).buffer);
  f.emit(0x43, ...b);
};
export const splat = (v: number): Expr => (f) => {
  f32(v)(f);
  f.simd(SIMD.f32x4_splat);
};
const binary = (op: number, simd: boolean) => (a: Expr, b: Expr): Expr => (f) => {
  a(f);
  b(f);
  if (simd) f.simd(op);
  else f.emit(op);
};
const unary = (op: number) => (a: Expr): Expr => (f) => {
  a(f);
  f.simd(op);
};
export const iadd = binary(0x6a, false);
export const imul = binary(0x6c, false);
export const add = binary(SIMD.f32x4_add, true);
export const sub = binary(SIMD.f32x4_sub, true);
export const mul = binary(SIMD.f32x4_mul, true);
export const div = binary(SIMD.f32x4_div, true);
export const min = binary(SIMD.f32x4_min, true);
export const max = binary(SIMD.f32x4_max, true);
export const nearest = unary(SIMD.f32x4_nearest);
export const truncToInt = unary(SIMD.i32x4_trunc_sat_f32x4_s);
export const intAdd = binary(SIMD.i32x4_add, true);
/** i32x4 shift left by a constant. */
export const intShl = (a: Expr, bits: number): Expr => (f) => {
  a(f);
  i32(bits)(f);
  f.simd(SIMD.i32x4_shl);
};
/** v128.load from an i32 byte address (plus a constant byte offset). */
export const load = (address: Expr, offset = 0): Expr => (f) => {
  address(f);
  f.simd(SIMD.load).emit(4, ...uleb(offset)); // align 2^4
};
/** One f32 from an i32 byte address (plus a constant byte offset), in all 4 lanes. */
export const loadSplat = (address: Expr, offset = 0): Expr => (f) => {
  address(f);
  f.simd(SIMD.load32_splat).emit(2, ...uleb(offset)); // align 2^2
};
/** Scalar f32: load, splat to 4 lanes, add, multiply. */
export const fload = (address: Expr): Expr => (f) => {
  address(f);
  f.emit(0x2a, 2, 0);
};
export const fsplat = (a: Expr): Expr => (f) => {
  a(f);
  f.simd(SIMD.f32x4_splat);
};
export const fadd = binary(0x92, false);
export const fmul = binary(0x94, false);

// ---- statements -----------------------------------------------------------------------------------
export const set = (f: FunctionBuilder, local: number, value: Expr) => {
  value(f);
  f.emit(0x21, ...uleb(local));
};
export const store = (f: FunctionBuilder, address: Expr, value: Expr) => {
  address(f);
  value(f);
  f.simd(SIMD.store).emit(4, 0);
};
export const storeAt = (f: FunctionBuilder, address: Expr, offset: number, value: Expr) => {
  address(f);
  value(f);
  f.simd(SIMD.store).emit(4, ...uleb(offset));
};
export const fstore = (f: FunctionBuilder, address: Expr, value: Expr) => {
  address(f);
  value(f);
  f.emit(0x38, 2, 0);
};
/** local += step (i32). */
export const bump = (f: FunctionBuilder, local: number, step: Expr) => set(f, local, iadd(get(local), step));

/** for (counter = 0; counter < limit; counter++) body — i32 locals. */
export function loop(f: FunctionBuilder, counter: number, limit: Expr, body: () => void): void {
  set(f, counter, i32(0));
  f.emit(0x02, 0x40); // block
  f.emit(0x03, 0x40); // loop
  get(counter)(f);
  limit(f);
  f.emit(0x4f); // i32.ge_u
  f.emit(0x0d, 1); // br_if to the block's end
  body();
  bump(f, counter, i32(1));
  f.emit(0x0c, 0); // br to the loop's start
  f.emit(0x0b, 0x0b); // end loop, end block
}

/** while (condition) body — condition is an i32 expression. */
export function whileLoop(f: FunctionBuilder, condition: Expr, body: () => void): void {
  f.emit(0x02, 0x40, 0x03, 0x40); // block, loop
  condition(f);
  f.emit(0x45, 0x0d, 1); // i32.eqz; br_if to the block's end
  body();
  f.emit(0x0c, 0, 0x0b, 0x0b); // br to the loop's start; end loop; end block
}

/** i32 comparisons (unsigned). */
export const leU = binary(0x4d, false);
export const ltU = binary(0x49, false);

/** A module that imports its memory as env.memory and exports the given functions (no results). */
export function assemble(functions: FunctionBuilder[]): Uint8Array {
  const types = functions.map((fn) => [0x60, ...vec(fn.params.map((p) => [typeCode(p)])), 0]);
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, ...uleb(1)]])), // memory, no maximum, ≥ 1 page
    ...section(3, vec(functions.map((_, i) => uleb(i)))),
    ...section(7, vec(functions.map((fn, i) => [...name(fn.name), 0x00, ...uleb(i)]))),
    ...section(10, vec(functions.map((fn) => {
      const body = fn.body();
      return [...uleb(body.length), ...body];
    }))),
  ];
  return new Uint8Array(bytes);
}
