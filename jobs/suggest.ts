/** "Did you mean …?": the known word nearest to a misspelt one, when it is near enough to be the one meant. */

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours cost 1. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate nearest to `word` (case-insensitive): within 1 edit for words up to 4 letters, 2 for longer
 * ones, or a candidate that `word` (3+ letters) begins; null when none is that near.
 */
export function closest(word: string, candidates: readonly string[]): string | null {
  const w = word.toLowerCase();
  let best: { c: string; d: number } | null = null;
  for (const c of candidates) {
    const dist = editDistance(w, c.toLowerCase());
    if (dist <= (w.length <= 4 ? 1 : 2) && (!best || dist < best.d)) best = { c, d: dist };
  }
  if (best) return best.c;
  return (w.length >= 3 && candidates.find((c) => c.toLowerCase().startsWith(w))) || null;
}
