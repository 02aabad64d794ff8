/**
 * SequenceBatch helpers for the models: checking a batch against a spec, picking and joining rows,
 * and turning rows into the network's input tensors.
 */
import * as tf from '@tensorflow/tfjs';
import { ModelError } from '../../core/errors.js';
import type { SequenceBatch, TokenColumn } from '../../proto/shard-batch.js';
import type { NetworkInputs } from './network.js';
import { embeddedColumns, isPerProduct, productIndex, type ModelSpec } from './spec.js';

/** Throws a ModelError when the batch cannot feed this model (other sequence length, missing columns or features). */
export function checkBatch(spec: ModelSpec, batch: SequenceBatch, needLabels = false): void {
  const problem = (what: string) => {
    throw new ModelError(`batch does not fit the model: ${what}; build the shards with the preprocessing config stored with the model`);
  };
  if (batch.maxLength !== spec.maxLength) problem(`sequences are ${batch.maxLength} long, the model reads ${spec.maxLength}`);
  for (const c of embeddedColumns(spec)) if (!batch.tokens[c]) problem(`it has no "${c}" tokens`);
  if (batch.featureNames.join(',') !== spec.featureNames.join(',')) {
    problem(`features are [${batch.featureNames.join(', ')}], the model reads [${spec.featureNames.join(', ')}]`);
  }
  if (batch.wideFeatures.join(',') !== spec.wideFeatures.join(',')) {
    problem(`aggregate features are [${batch.wideFeatures.join(', ')}], the model reads [${spec.wideFeatures.join(', ')}]`);
  }
  if (spec.wideFeatures.length > 0) {
    const missing = (isPerProduct(spec) ? [spec.product!] : spec.products).filter((p) => !batch.products.includes(p));
    if (missing.length > 0) problem(`its aggregate features lack products [${missing.join(', ')}]`);
  }
  if (needLabels) {
    if (!batch.labels) problem('it has no labels (a scoring shard was sent for training)');
    const missing = spec.products.filter((p) => !batch.products.includes(p));
    if (missing.length > 0) problem(`its labels lack products [${missing.join(', ')}]`);
  }
}

/** A new batch holding the given rows, in the given order. */
export function selectRows(batch: SequenceBatch, rows: ArrayLike<number>): SequenceBatch {
  const n = rows.length;
  const L = batch.maxLength;
  const F = batch.featureNames.length;
  const P = batch.products.length;
  const tokens: Partial<Record<TokenColumn, Int32Array>> = {};
  for (const [c, src] of Object.entries(batch.tokens) as [TokenColumn, Int32Array][]) {
    const out = new Int32Array(n * L);
    for (let i = 0; i < n; i++) out.set(src.subarray(rows[i]! * L, (rows[i]! + 1) * L), i * L);
    tokens[c] = out;
  }
  const features = new Float32Array(n * L * F);
  for (let i = 0; i < n; i++) features.set(batch.features.subarray(rows[i]! * L * F, (rows[i]! + 1) * L * F), i * L * F);
  const W = P * batch.wideFeatures.length;
  const wide = new Float32Array(n * W);
  for (let i = 0; i < n; i++) wide.set(batch.wide.subarray(rows[i]! * W, (rows[i]! + 1) * W), i * W);
  let labels: Int8Array | null = null;
  if (batch.labels) {
    labels = new Int8Array(n * P);
    for (let i = 0; i < n; i++) labels.set(batch.labels.subarray(rows[i]! * P, (rows[i]! + 1) * P), i * P);
  }
  const pick = <A extends Int32Array | Float32Array | Int8Array>(a: A, Ctor: new (n: number) => A): A => {
    const out = new Ctor(n);
    for (let i = 0; i < n; i++) out[i] = a[rows[i]!]!;
    return out;
  };
  return {
    size: n,
    maxLength: L,
    customerIds: Array.from({ length: n }, (_, i) => batch.customerIds[rows[i]!]!),
    historyLength: pick(batch.historyLength, Int32Array),
    tokens,
    features,
    featureNames: batch.featureNames,
    products: batch.products,
    wide,
    wideFeatures: batch.wideFeatures,
    labels,
    weight: pick(batch.weight, Float32Array),
    split: pick(batch.split, Int8Array),
    snapshot: pick(batch.snapshot, Int8Array),
  };
}

/** The rows whose split is `split` (0 = train, 1 = validation). */
export function rowsOfSplit(batch: SequenceBatch, split: 0 | 1): SequenceBatch {
  const rows: number[] = [];
  for (let i = 0; i < batch.size; i++) if (batch.split[i] === split) rows.push(i);
  return rows.length === batch.size ? batch : selectRows(batch, rows);
}

/** Joins batches of the same layout (sequence length, columns, features, products) into one. */
export function concatBatches(batches: SequenceBatch[]): SequenceBatch {
  if (batches.length === 0) throw new ModelError('concatBatches needs at least one batch');
  if (batches.length === 1) return batches[0]!;
  const first = batches[0]!;
  for (const b of batches) {
    const same =
      b.maxLength === first.maxLength &&
      b.featureNames.join(',') === first.featureNames.join(',') &&
      b.wideFeatures.join(',') === first.wideFeatures.join(',') &&
      b.products.join(',') === first.products.join(',') &&
      Object.keys(b.tokens).sort().join(',') === Object.keys(first.tokens).sort().join(',') &&
      (b.labels === null) === (first.labels === null);
    if (!same) throw new ModelError('batches to join differ in sequence length, token columns, features, products or labels: they come from different preprocessing runs');
  }
  const join = <A extends Int32Array | Float32Array | Int8Array>(parts: A[], Ctor: new (n: number) => A): A => {
    const out = new Ctor(parts.reduce((s, p) => s + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p as never, at);
      at += p.length;
    }
    return out;
  };
  const tokens: Partial<Record<TokenColumn, Int32Array>> = {};
  for (const c of Object.keys(first.tokens) as TokenColumn[]) tokens[c] = join(batches.map((b) => b.tokens[c]!), Int32Array);
  return {
    size: batches.reduce((s, b) => s + b.size, 0),
    maxLength: first.maxLength,
    customerIds: batches.flatMap((b) => b.customerIds),
    historyLength: join(batches.map((b) => b.historyLength), Int32Array),
    tokens,
    features: join(batches.map((b) => b.features), Float32Array),
    featureNames: first.featureNames,
    products: first.products,
    wide: join(batches.map((b) => b.wide), Float32Array),
    wideFeatures: first.wideFeatures,
    labels: first.labels ? join(batches.map((b) => b.labels!), Int8Array) : null,
    weight: join(batches.map((b) => b.weight), Float32Array),
    split: join(batches.map((b) => b.split), Int8Array),
    snapshot: join(batches.map((b) => b.snapshot), Int8Array),
  };
}

/** Input tensors for rows [from, to) of a batch (views, no row copies). */
export function inputTensors(spec: ModelSpec, batch: SequenceBatch, from = 0, to = batch.size): NetworkInputs {
  const L = batch.maxLength;
  const F = batch.featureNames.length;
  const n = to - from;
  const tokens: NetworkInputs['tokens'] = {};
  for (const c of embeddedColumns(spec)) tokens[c] = tf.tensor2d(batch.tokens[c]!.subarray(from * L, to * L), [n, L], 'int32');
  const features = spec.architecture === 'logistic' ? tf.zeros([n, 0, 0]) as tf.Tensor3D : tf.tensor3d(batch.features.subarray(from * L * F, to * L * F), [n, L, F], 'float32');
  return { tokens, features, wide: tf.tensor3d(wideRows(spec, batch, from, to), [n, isPerProduct(spec) ? 1 : spec.products.length, spec.wideFeatures.length], 'float32') };
}

/**
 * The aggregate features the model reads for rows [from, to): [rows × 1 × W] (its product) for a per-product
 * model, [rows × spec.products × W] (in the spec's product order) for attention.
 */
export function wideRows(spec: ModelSpec, batch: SequenceBatch, from = 0, to = batch.size): Float32Array {
  const W = spec.wideFeatures.length;
  const P = batch.products.length;
  const columns = isPerProduct(spec) ? [batch.products.indexOf(spec.products[productIndex(spec)]!)] : spec.products.map((p) => batch.products.indexOf(p));
  const n = to - from;
  const out = new Float32Array(n * columns.length * W);
  if (W === 0) return out;
  for (let r = 0; r < n; r++) {
    const base = (from + r) * P * W;
    for (let j = 0; j < columns.length; j++) out.set(batch.wide.subarray(base + columns[j]! * W, base + (columns[j]! + 1) * W), (r * columns.length + j) * W);
  }
  return out;
}

export function disposeInputs(inputs: NetworkInputs): void {
  for (const t of Object.values(inputs.tokens)) t?.dispose();
  inputs.features.dispose();
  inputs.wide.dispose();
}

/**
 * Targets and per-entry loss weights for rows [from, to): [rows] for lstm (its product's label),
 * [rows × products] for attention. Weight = sampling weight × (positive ? positiveWeight : 1).
 */
export function targets(spec: ModelSpec, batch: SequenceBatch, productIds: number[], from = 0, to = batch.size): { labels: Float32Array; weights: Float32Array } {
  const P = batch.products.length;
  const columns = productIds.map((i) => batch.products.indexOf(spec.products[i]!));
  const n = to - from;
  const labels = new Float32Array(n * columns.length);
  const weights = new Float32Array(n * columns.length);
  for (let r = 0; r < n; r++) {
    const row = from + r;
    for (let j = 0; j < columns.length; j++) {
      const y = batch.labels![row * P + columns[j]!]! > 0 ? 1 : 0;
      labels[r * columns.length + j] = y;
      weights[r * columns.length + j] = batch.weight[row]! * (y === 1 ? spec.positiveWeight : 1);
    }
  }
  return { labels, weights };
}

/**
 * The batch cut to its last `maxLength` positions (sequences are left-padded, so these are the latest
 * events): a model trained on shorter sequences than the shards carry (a tuning trial) reads the same shards.
 */
export function lastPositions(batch: SequenceBatch, maxLength: number): SequenceBatch {
  const L = batch.maxLength;
  if (maxLength >= L) return batch;
  const F = batch.featureNames.length;
  const cut = L - maxLength;
  const tokens: Partial<Record<TokenColumn, Int32Array>> = {};
  for (const [c, src] of Object.entries(batch.tokens) as [TokenColumn, Int32Array][]) {
    const out = new Int32Array(batch.size * maxLength);
    for (let i = 0; i < batch.size; i++) out.set(src.subarray(i * L + cut, (i + 1) * L), i * maxLength);
    tokens[c] = out;
  }
  const features = new Float32Array(batch.size * maxLength * F);
  for (let i = 0; i < batch.size; i++) features.set(batch.features.subarray((i * L + cut) * F, (i + 1) * L * F), i * maxLength * F);
  return { ...batch, maxLength, tokens, features };
}
