/** Ranking metrics the trainer needs for early stopping. */

/**
 * Area under the ROC curve (Mann–Whitney, ties count half), optionally weighted.
 * Returns NaN when one class is absent (AUC is undefined then).
 */
export function auc(scores: ArrayLike<number>, labels: ArrayLike<number>, weights?: ArrayLike<number>): number {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let positives = 0;
  let negatives = 0;
  let area = 0;
  let negativesBelow = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    let pos = 0;
    let neg = 0;
    while (j < n && scores[order[j]!] === scores[order[i]!]) {
      const k = order[j]!;
      const w = weights ? weights[k]! : 1;
      if (labels[k]! > 0) pos += w;
      else neg += w;
      j++;
    }
    area += pos * (negativesBelow + neg / 2);
    negativesBelow += neg;
    positives += pos;
    negatives += neg;
    i = j;
  }
  return positives > 0 && negatives > 0 ? area / (positives * negatives) : NaN;
}
