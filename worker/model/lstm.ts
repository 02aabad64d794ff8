/**
 * The LSTM recurrence, Keras-compatible (gate blocks i, f, c, o; sigmoid gates, tanh cell; no masking —
 * padding is an ordinary learnable token), as one custom-gradient op over time-major pre-activations
 * (the caller computes x·W + b for all steps at once, see network.ts).
 *
 * tfjs's own LSTM layer tapes dozens of small ops per time step and differentiates them one by one, which is
 * what makes it slow on CPU backends. Here the backward pass (BPTT) is written by hand: on wasm and the
 * JavaScript backend it runs as two fused kernels (kernels/lstm-recurrence.ts: per step one matrix product
 * plus one pass of gate arithmetic, SIMD on wasm); on other backends (tfjs-node) as a dozen ops per step
 * forward and seven backward, with the big products (dU) left to one large matrix multiplication.
 */
import * as tf from '@tensorflow/tfjs';
import { LSTM_BACKWARD, LSTM_FORWARD } from './kernels/lstm-recurrence.js';

type T2 = tf.Tensor2D;
type T3 = tf.Tensor3D;

/**
 * Runs the recurrence over time-major pre-activations: with the fused kernels where the active backend has
 * them (wasm, cpu: see kernels/lstm-recurrence.ts), else op by op.
 * @param preactivations [steps, batch, 4·units]: x_t·W + b for every step
 * @param recurrentKernel [units, 4·units]
 * @returns hidden states [steps, batch, units]
 */
export function lstmRecurrence(preactivations: T3, recurrentKernel: T2): T3 {
  const fused = tf.getKernel(LSTM_FORWARD, tf.getBackend()) !== undefined;
  return (fused ? fusedRecurrence : opRecurrence)(preactivations, recurrentKernel) as T3;
}

/** The op-by-op recurrence, whatever the backend (exported for tests that compare the two). */
export function lstmRecurrenceWithOps(preactivations: T3, recurrentKernel: T2): T3 {
  return opRecurrence(preactivations, recurrentKernel) as T3;
}

const fusedRecurrence = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [xp, u, save] = args as [T3, T2, tf.GradSaveFunc];
  const [hidden, gates, cells, cellTanh] = tf.engine().runKernel(LSTM_FORWARD, { preactivations: xp, recurrentKernel: u }) as tf.Tensor[];
  save([u, gates!, cells!, cellTanh!, hidden!]);
  return {
    value: hidden as T3,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [recurrentKernel, g, c, tc, h] = saved;
      return tf.engine().runKernel(LSTM_BACKWARD, { dy, recurrentKernel: recurrentKernel!, gates: g!, cells: c!, cellTanh: tc!, hidden: h! }) as tf.Tensor[];
    },
  };
});

const opRecurrence = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [xp, u, save] = args as [T3, T2, tf.GradSaveFunc];
  const [steps, batch, gates] = xp.shape;
  const units = gates / 4;
  const xs = tf.unstack(xp) as T2[];
  let h: T2 = tf.zeros([batch, units]);
  let c: T2 = tf.zeros([batch, units]);
  const keep = { h: [] as T2[], i: [] as T2[], f: [] as T2[], g: [] as T2[], o: [] as T2[], c: [] as T2[] };
  for (let t = 0; t < steps; t++) {
    const prevH = h;
    const prevC = c;
    const step = tf.tidy(() => {
      const z = t === 0 ? xs[t]! : tf.add(xs[t]!, tf.matMul(prevH, u));
      const [zi, zf, zg, zo] = tf.split(z, 4, 1) as T2[];
      const i = tf.sigmoid(zi!);
      const f = tf.sigmoid(zf!);
      const g = tf.tanh(zg!);
      const o = tf.sigmoid(zo!);
      const cNew = tf.add(tf.mul(f, prevC), tf.mul(i, g)) as T2;
      const hNew = tf.mul(o, tf.tanh(cNew)) as T2;
      return { i, f, g, o, c: cNew, h: hNew };
    });
    for (const k of ['i', 'f', 'g', 'o', 'c', 'h'] as const) keep[k].push(step[k]);
    h = step.h;
    c = step.c;
  }
  const hs = tf.stack(keep.h) as T3;
  save([u, ...(['i', 'f', 'g', 'o', 'c'] as const).map((k) => tf.stack(keep[k])), hs]);
  return {
    value: hs,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => backward(dy as T3, saved as [T2, T3, T3, T3, T3, T3, T3]),
  };
});

/** BPTT. Returns [d preactivations, d recurrentKernel]. */
function backward(dy: T3, saved: [T2, T3, T3, T3, T3, T3, T3]): tf.Tensor[] {
  const [u, I, F, G, O, C, H] = saved;
  const [steps, batch, units] = H.shape;
  const zeros = tf.zeros([1, batch, units]);
  const shiftIn = (x: T3) => (steps === 1 ? zeros : tf.concat([zeros, tf.slice(x, [0, 0, 0], [steps - 1, batch, units])], 0));
  const tc = tf.tanh(C);
  // dL/dz for each gate block = (dc or dh) × local factor; the factors need nothing from later steps,
  // so they are computed for all steps at once: i: g·σ', f: c_{t-1}·σ', c: i·tanh', o: tanh(c)·σ'.
  const one = tf.scalar(1);
  const sigmoidDeriv = (s: T3) => tf.mul(s, tf.sub(one, s));
  const factors = tf.concat(
    [
      tf.mul(G, sigmoidDeriv(I)),
      tf.mul(shiftIn(C), sigmoidDeriv(F)),
      tf.mul(I, tf.sub(one, tf.square(G))),
      tf.mul(tc, sigmoidDeriv(O)),
    ],
    2,
  );
  const toCell = tf.mul(O, tf.sub(one, tf.square(tc))); // dc_t += dh_t · o·tanh'(c)
  const dys = tf.unstack(dy) as T2[];
  const factorAt = tf.unstack(factors) as T2[];
  const toCellAt = tf.unstack(toCell) as T2[];
  const forgetAt = tf.unstack(F) as T2[];
  // matMul with transposeB is ~8× slower than a plain one on tfjs-backend-wasm: transpose U once instead.
  const uT = tf.transpose(u);
  const dz = new Array<T2>(steps);
  let dhRec: T2 | null = null;
  let dcNext: T2 | null = null;
  for (let t = steps - 1; t >= 0; t--) {
    const carriedH: T2 | null = dhRec;
    const carriedC: T2 | null = dcNext;
    const step = tf.tidy(() => {
      const dh = carriedH ? tf.add(dys[t]!, carriedH) : dys[t]!;
      const dcLocal = tf.mul(dh, toCellAt[t]!);
      const dc = carriedC ? tf.add(dcLocal, carriedC) : dcLocal;
      const dzt = tf.mul(tf.concat([dc, dc, dc, dh], 1), factorAt[t]!);
      const out: Record<string, tf.Tensor> = { dz: dzt, dc: tf.mul(dc, forgetAt[t]!) };
      if (t > 0) out.dh = tf.matMul(dzt as T2, uT);
      return out;
    }) as { dz: T2; dc: T2; dh?: T2 };
    carriedH?.dispose();
    carriedC?.dispose();
    dz[t] = step.dz;
    dhRec = step.dh ?? null;
    dcNext = step.dc;
  }
  (dcNext as T2 | null)?.dispose();
  const dZ = tf.stack(dz) as T3;
  const gates = 4 * units;
  const dU = tf.matMul(tf.reshape(shiftIn(H), [steps * batch, units]), tf.reshape(dZ, [steps * batch, gates]), true, false);
  return [dZ, dU];
}
