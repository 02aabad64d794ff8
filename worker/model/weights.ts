/**
 * Initial weights, drawn from the spec's seed with Keras's default initialisers: embeddings uniform(±0.05),
 * kernels Glorot-uniform, the recurrent kernel orthogonal, biases zero except the LSTM forget gate (1);
 * product queries (attention) uniform(±1).
 */
import { ModelError } from '../../core/errors.js';
import { hashString, mixSeed, Rng } from './rng.js';
import { weightCount, weightLayout, type ModelSpec, type WeightEntry } from './spec.js';

export function initialWeights(spec: ModelSpec): Float32Array {
  const flat = new Float32Array(weightCount(spec));
  for (const w of weightLayout(spec)) {
    // Each weight draws from its own stream, so adding a column does not reshuffle the others.
    const rng = new Rng(mixSeed(spec.seed, hashString(w.name)));
    const out = flat.subarray(w.offset, w.offset + w.size);
    if (w.name.startsWith('embedding/')) fillUniform(out, rng, 0.05);
    // Queries start at unit scale so attention is not uniform at the start (it learns several times faster).
    else if (w.name === 'query/embedding') fillUniform(out, rng, 1);
    // The wide part starts at zero: the trainer holds it there while the sequence part learns first.
    else if (w.name.startsWith('wide/')) continue;
    else if (w.name === 'lstm/recurrent_kernel') fillOrthogonal(out, w.shape[0]!, w.shape[1]!, rng);
    else if (w.name.endsWith('kernel')) fillUniform(out, rng, Math.sqrt(6 / (w.shape[0]! + w.shape[1]!)));
    else if (w.name === 'lstm/bias') out.fill(1, spec.hiddenUnits, 2 * spec.hiddenUnits);
  }
  return flat;
}

function fillUniform(out: Float32Array, rng: Rng, limit: number): void {
  for (let i = 0; i < out.length; i++) out[i] = rng.uniform(-limit, limit);
}

/** rows × cols with orthonormal rows (rows ≤ cols), by modified Gram–Schmidt on Gaussian rows. */
function fillOrthogonal(out: Float32Array, rows: number, cols: number, rng: Rng): void {
  const m = new Float64Array(rows * cols);
  for (let i = 0; i < m.length; i++) m[i] = rng.normal();
  for (let r = 0; r < rows; r++) {
    const row = m.subarray(r * cols, (r + 1) * cols);
    for (let p = 0; p < r; p++) {
      const prev = m.subarray(p * cols, (p + 1) * cols);
      let dot = 0;
      for (let k = 0; k < cols; k++) dot += row[k]! * prev[k]!;
      for (let k = 0; k < cols; k++) row[k]! -= dot * prev[k]!;
    }
    let norm = 0;
    for (let k = 0; k < cols; k++) norm += row[k]! * row[k]!;
    norm = Math.sqrt(norm);
    for (let k = 0; k < cols; k++) row[k]! /= norm;
  }
  for (let i = 0; i < m.length; i++) out[i] = m[i]!;
}

/** Splits a flat weight vector into named views (no copy); a wrong length says whose weights they might be. */
export function splitWeights(spec: ModelSpec, flat: Float32Array): Map<string, { entry: WeightEntry; values: Float32Array }> {
  const expected = weightCount(spec);
  if (flat.length !== expected) {
    throw new ModelError(
      `weights have ${flat.length} values where this ${spec.architecture} spec needs ${expected}: they were trained with another spec (sizes, vocabularies, products or features differ)`,
    );
  }
  const out = new Map<string, { entry: WeightEntry; values: Float32Array }>();
  for (const entry of weightLayout(spec)) out.set(entry.name, { entry, values: flat.subarray(entry.offset, entry.offset + entry.size) });
  return out;
}
