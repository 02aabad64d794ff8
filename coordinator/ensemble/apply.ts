import { ModelError } from '../../core/errors.js';
import { logit, type EnsembleSpec, type ModelScores } from './spec.js';

/** Combines the models' scores (matched by name) as `spec` says; rows keep their order. */
export function applyEnsemble(spec: EnsembleSpec, models: ModelScores[]): Float32Array {
  const columns = spec.models.map((name) => {
    const found = models.find((m) => m.name === name);
    if (!found) {
      throw new ModelError(
        `the ensemble needs scores from model "${name}" but got [${models.map((m) => m.name).join(', ')}]: score with every model the ensemble was fitted on`,
      );
    }
    return found.scores;
  });
  const n = columns[0]?.length ?? 0;
  for (const [k, c] of columns.entries()) {
    if (c.length !== n) throw new ModelError(`model "${spec.models[k]}" has ${c.length} scores where "${spec.models[0]}" has ${n}`);
  }
  const out = new Float32Array(n);
  if (columns.length === 1 && spec.method === 'mean') {
    out.set(columns[0]!);
    return out;
  }
  for (let i = 0; i < n; i++) {
    if (spec.method === 'mean') {
      let sum = 0;
      for (let k = 0; k < columns.length; k++) sum += spec.weights[k]! * columns[k]![i]!;
      out[i] = sum;
    } else {
      let z = spec.bias ?? 0;
      for (let k = 0; k < columns.length; k++) z += spec.weights[k]! * logit(columns[k]![i]!);
      out[i] = 1 / (1 + Math.exp(-z));
    }
  }
  return out;
}
