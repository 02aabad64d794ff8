/**
 * L2-regularised logistic regression fitted by Newton's method (IRLS) with step halving.
 * Deterministic: the same inputs give bit-identical weights (fixed summation order, no randomness).
 * Used by the count baseline here and by the fitted ensemble.
 */
import { ModelError } from '../../core/errors.js';

export interface LogisticOptions {
  /** Penalty λ/2·‖w‖² on the weights (never on the bias), on the scale of the summed log loss. @default 1 */
  l2?: number;
  /** Per-row weights in the loss. @default all 1 */
  sampleWeights?: Float32Array | Float64Array;
  /** Rescale each feature to mean 0 and standard deviation 1 before fitting (weights are reported on the original scale). @default false */
  standardise?: boolean;
  /** @default 100 */
  maxIterations?: number;
  /** Stop when no coefficient moves more than this. @default 1e-9 */
  tolerance?: number;
}

export interface LogisticModel {
  /** One weight per feature, on the features' original scale. */
  weights: number[];
  bias: number;
  iterations: number;
  converged: boolean;
}

/** `features` are columns: features[j][i] is feature j of row i. */
export function fitLogisticRegression(
  features: readonly Float64Array[],
  labels: Int8Array,
  options: LogisticOptions = {},
): LogisticModel {
  const l2 = options.l2 ?? 1;
  const maxIterations = options.maxIterations ?? 100;
  const tolerance = options.tolerance ?? 1e-9;
  const n = labels.length;
  const k = features.length;
  const sw = options.sampleWeights;
  for (const column of features) {
    if (column.length !== n) throw new ModelError(`a feature has ${column.length} rows for ${n} labels`);
  }
  if (sw && sw.length !== n) throw new ModelError(`got ${sw.length} sample weights for ${n} labels`);

  // Standardising: x' = (x − mean) / sd; a constant feature gets sd 1 and, with the L2 penalty, weight 0.
  const mean = new Float64Array(k);
  const scale = new Float64Array(k).fill(1);
  if (options.standardise) {
    for (let j = 0; j < k; j++) {
      const x = features[j]!;
      let sum = 0;
      for (let i = 0; i < n; i++) sum += x[i]!;
      mean[j] = n > 0 ? sum / n : 0;
      let sq = 0;
      for (let i = 0; i < n; i++) sq += (x[i]! - mean[j]!) ** 2;
      const sd = n > 0 ? Math.sqrt(sq / n) : 0;
      scale[j] = sd > 1e-12 ? sd : 1;
    }
  }
  const columns = options.standardise
    ? features.map((x, j) => x.map((v) => (v - mean[j]!) / scale[j]!))
    : features;

  const dim = k + 1; // coefficients 0..k−1, bias at k
  let beta = new Float64Array(dim);
  const z = new Float64Array(n);
  const linear = (b: Float64Array): void => {
    for (let i = 0; i < n; i++) z[i] = b[k]!;
    for (let j = 0; j < k; j++) {
      const bj = b[j]!;
      const x = columns[j]!;
      if (bj === 0) continue;
      for (let i = 0; i < n; i++) z[i] = z[i]! + bj * x[i]!;
    }
  };
  const loss = (b: Float64Array): number => {
    linear(b);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const zi = z[i]!;
      // log(1 + e^z) − y·z, computed without overflow
      const softplus = zi > 0 ? zi + Math.log1p(Math.exp(-zi)) : Math.log1p(Math.exp(zi));
      total += (sw ? sw[i]! : 1) * (softplus - labels[i]! * zi);
    }
    for (let j = 0; j < k; j++) total += 0.5 * l2 * b[j]! ** 2;
    return total;
  };

  let current = loss(beta);
  let iterations = 0;
  let converged = false;
  const row = new Float64Array(dim);
  while (iterations < maxIterations) {
    iterations++;
    linear(beta);
    const gradient = new Float64Array(dim);
    const hessian = new Float64Array(dim * dim);
    for (let i = 0; i < n; i++) {
      const p = 1 / (1 + Math.exp(-z[i]!));
      const wi = sw ? sw[i]! : 1;
      for (let j = 0; j < k; j++) row[j] = columns[j]![i]!;
      row[k] = 1;
      const residual = wi * (p - labels[i]!);
      const curvature = wi * p * (1 - p);
      for (let a = 0; a < dim; a++) {
        gradient[a] = gradient[a]! + residual * row[a]!;
        const ca = curvature * row[a]!;
        for (let b = 0; b <= a; b++) hessian[a * dim + b] = hessian[a * dim + b]! + ca * row[b]!;
      }
    }
    for (let a = 0; a < dim; a++) {
      for (let b = 0; b < a; b++) hessian[b * dim + a] = hessian[a * dim + b]!;
      // A tiny ridge keeps the system solvable when every prediction is already 0 or 1.
      hessian[a * dim + a] = hessian[a * dim + a]! + (a < k ? l2 : 0) + 1e-9;
      if (a < k) gradient[a] = gradient[a]! + l2 * beta[a]!;
    }
    const step = solveSymmetric(hessian, gradient, dim);
    let t = 1;
    let next = beta;
    let nextLoss = current;
    for (let halving = 0; halving < 40; halving++) {
      const candidate = new Float64Array(dim);
      for (let a = 0; a < dim; a++) candidate[a] = beta[a]! - t * step[a]!;
      const candidateLoss = loss(candidate);
      if (candidateLoss <= current) {
        next = candidate;
        nextLoss = candidateLoss;
        break;
      }
      t /= 2;
    }
    let moved = 0;
    for (let a = 0; a < dim; a++) moved = Math.max(moved, Math.abs(next[a]! - beta[a]!));
    beta = next;
    current = nextLoss;
    if (moved <= tolerance) {
      converged = true;
      break;
    }
  }

  // Back to the original feature scale: w·(x − m)/s + b = (w/s)·x + (b − Σ w·m/s).
  const weights: number[] = [];
  let bias = beta[k]!;
  for (let j = 0; j < k; j++) {
    weights.push(beta[j]! / scale[j]!);
    bias -= (beta[j]! * mean[j]!) / scale[j]!;
  }
  if (!weights.every(Number.isFinite) || !Number.isFinite(bias)) {
    throw new ModelError('logistic regression diverged (non-finite coefficients): check the features for infinities');
  }
  return { weights, bias, iterations, converged };
}

export function predictLogistic(model: LogisticModel, features: readonly Float64Array[]): Float32Array {
  const n = features[0]?.length ?? 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let zi = model.bias;
    for (let j = 0; j < features.length; j++) zi += model.weights[j]! * features[j]![i]!;
    out[i] = 1 / (1 + Math.exp(-zi));
  }
  return out;
}

/** Solves H·x = g for a symmetric positive-definite H (row-major dim × dim) by Cholesky decomposition. */
function solveSymmetric(h: Float64Array, g: Float64Array, dim: number): Float64Array {
  const l = new Float64Array(dim * dim);
  for (let i = 0; i < dim; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = h[i * dim + j]!;
      for (let m = 0; m < j; m++) sum -= l[i * dim + m]! * l[j * dim + m]!;
      if (i === j) {
        if (!(sum > 0)) throw new ModelError('logistic regression: the Hessian is not positive definite (a feature is NaN?)');
        l[i * dim + i] = Math.sqrt(sum);
      } else {
        l[i * dim + j] = sum / l[j * dim + j]!;
      }
    }
  }
  const y = new Float64Array(dim);
  for (let i = 0; i < dim; i++) {
    let sum = g[i]!;
    for (let m = 0; m < i; m++) sum -= l[i * dim + m]! * y[m]!;
    y[i] = sum / l[i * dim + i]!;
  }
  const x = new Float64Array(dim);
  for (let i = dim - 1; i >= 0; i--) {
    let sum = y[i]!;
    for (let m = i + 1; m < dim; m++) sum -= l[m * dim + i]! * x[m]!;
    x[i] = sum / l[i * dim + i]!;
  }
  return x;
}
