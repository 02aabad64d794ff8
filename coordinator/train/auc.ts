import { auc } from '../../worker/model/index.js';

/**
 * Validation AUC of a model: for a product-keyed model the mean of the per-product AUCs (pooling all
 * products would mostly measure how base rates differ between products), skipping products whose
 * validation rows lack a class; NaN when every product does.
 */
export function meanProductAuc(labels: Int8Array, scores: Float32Array, products: number): number {
  if (products <= 1) return auc(scores, labels);
  const rows = scores.length / products;
  const aucs: number[] = [];
  for (let j = 0; j < products; j++) {
    const l = new Int8Array(rows);
    const s = new Float32Array(rows);
    for (let i = 0; i < rows; i++) {
      l[i] = labels[i * products + j]!;
      s[i] = scores[i * products + j]!;
    }
    const a = auc(s, l);
    if (!Number.isNaN(a)) aucs.push(a);
  }
  return aucs.length === 0 ? Number.NaN : aucs.reduce((x, y) => x + y, 0) / aucs.length;
}
