/** Example-weighted mean of the participants' weights: the synchronisation step of local SGD. */
export function averageWeights(parts: { weights: Float32Array; examples: number }[]): Float32Array {
  const used = parts.filter((p) => p.examples > 0);
  if (used.length === 0) throw new Error('averageWeights: no participant saw any example this round');
  const length = used[0]!.weights.length;
  const total = used.reduce((s, p) => s + p.examples, 0);
  const sum = new Float64Array(length);
  for (const p of used) {
    if (p.weights.length !== length) throw new Error(`averageWeights: weight vectors differ in length (${p.weights.length} vs ${length})`);
    const share = p.examples / total;
    const w = p.weights;
    for (let i = 0; i < length; i++) sum[i]! += w[i]! * share;
  }
  return Float32Array.from(sum);
}
