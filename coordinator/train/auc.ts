/** ROC AUC by the rank-sum formula, ties given their average rank; NaN when one class is absent. */
export function binaryAuc(labels: ArrayLike<number>, scores: ArrayLike<number>): number {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]!] === scores[order[i]!]) j++;
    const averageRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (labels[order[k]!]! > 0) {
        positives++;
        rankSum += averageRank;
      }
    }
    i = j + 1;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return Number.NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/**
 * Validation AUC of a model: for a product-keyed model the mean of the per-product AUCs (pooling all
 * products would mostly measure how base rates differ between products), skipping products whose
 * validation rows lack a class; NaN when every product does.
 */
export function meanProductAuc(labels: Int8Array, scores: Float32Array, products: number): number {
  if (products <= 1) return binaryAuc(labels, scores);
  const rows = scores.length / products;
  const aucs: number[] = [];
  for (let j = 0; j < products; j++) {
    const l = new Int8Array(rows);
    const s = new Float32Array(rows);
    for (let i = 0; i < rows; i++) {
      l[i] = labels[i * products + j]!;
      s[i] = scores[i * products + j]!;
    }
    const a = binaryAuc(l, s);
    if (!Number.isNaN(a)) aucs.push(a);
  }
  return aucs.length === 0 ? Number.NaN : aucs.reduce((x, y) => x + y, 0) / aucs.length;
}
