/**
 * Champion selection: of a product's candidates (the ensemble and each single model), the one published
 * is the best on the validation customers by AUC — unless a simpler candidate is not worse beyond noise,
 * in which case the simpler one wins: the count-only logistic model first (a sequence model, or the ensemble
 * that averages it in, must beat the counts beyond noise to be published), then the ensemble of all models.
 */
import { ModelError } from '../../core/errors.js';
import { aucOf, pairedAucComparison, type PairedComparisonOptions } from './compare.js';

/** Below this many validation buyers, AUC differences are noise: publish the mean ensemble, with a warning. */
export const MIN_VALIDATION_POSITIVES = 10;

export const ENSEMBLE_CANDIDATE = 'ensemble';

/**
 * An AUC deficit this small never counts, however consistent: the bootstrap sees only the noise of the
 * validation sample, not that of training (two nights' models differ by more than this from seeds alone),
 * and a paired comparison of two very similar models finds even a 0.001 gap "significant".
 */
export const AUC_TOLERANCE = 0.005;

/** Whether a candidate whose AUC minus another's is `cmp` is not worse than it beyond noise. */
export function notWorseBeyondNoise(cmp: { difference: number; upper: number }): boolean {
  return cmp.upper >= 0 || cmp.difference >= -AUC_TOLERANCE;
}

export interface ChampionCandidate {
  /** 'ensemble', or a model name such as 'lstm.any' or 'logistic.any'. */
  name: string;
  /** Validation scores, in the order of `labels`. */
  scores: Float32Array;
}

export interface CandidateResult {
  name: string;
  auc: number | null;
  /** This candidate's AUC minus the best one's, with its bootstrap interval (absent for the best itself). */
  versusBest?: { difference: number; lower: number; upper: number };
}

export interface ChampionChoice {
  /** The candidate published. */
  chosen: string;
  /** Why, in words (for the report and the manifest). */
  reason: string;
  /** Set when the choice fell back to a safe default (too few buyers, no AUC). */
  warning?: string;
  validation: { rows: number; positives: number };
  candidates: CandidateResult[];
}

export interface ChooseChampionOptions extends PairedComparisonOptions {
  /** @default MIN_VALIDATION_POSITIVES */
  minPositives?: number;
}

/** Lower is simpler: the count-only logistic model, then the ensemble of all models, then the rest in given order. */
export function simplicity(name: string): number {
  if (name === 'logistic' || name.startsWith('logistic.')) return 0;
  if (name === ENSEMBLE_CANDIDATE) return 1;
  return 2;
}

export function chooseChampion(labels: Int8Array, candidates: ChampionCandidate[], options: ChooseChampionOptions = {}): ChampionChoice {
  if (!candidates.some((c) => c.name === ENSEMBLE_CANDIDATE)) {
    throw new ModelError(`champion selection needs the "${ENSEMBLE_CANDIDATE}" candidate (the fallback) among [${candidates.map((c) => c.name).join(', ')}]`);
  }
  for (const c of candidates) {
    if (c.scores.length !== labels.length) throw new ModelError(`candidate "${c.name}" has ${c.scores.length} validation scores for ${labels.length} labels`);
  }
  let positives = 0;
  for (const y of labels) if (y === 1) positives++;
  const validation = { rows: labels.length, positives };
  const minPositives = options.minPositives ?? MIN_VALIDATION_POSITIVES;
  if (positives < minPositives || positives === labels.length) {
    const warning = `only ${positives} validation buyers among ${labels.length} customers (fewer than ${minPositives}): AUC differences are noise, so the mean of all models is published`;
    return { chosen: ENSEMBLE_CANDIDATE, reason: warning, warning, validation, candidates: candidates.map((c) => ({ name: c.name, auc: null })) };
  }

  // Simplest first, so that on an exact tie the simpler candidate is the best.
  const ordered = candidates.map((c, i) => ({ c, i })).sort((x, y) => simplicity(x.c.name) - simplicity(y.c.name) || x.i - y.i).map((x) => x.c);
  const aucs = new Map(ordered.map((c) => [c.name, aucOf(labels, c.scores)!]));
  const best = ordered.reduce((b, c) => (aucs.get(c.name)! > aucs.get(b.name)! ? c : b));
  const results: CandidateResult[] = candidates.map((c) => ({ name: c.name, auc: aucs.get(c.name)! }));
  let chosen = best;
  let reason = `"${best.name}" has the best validation AUC (${aucs.get(best.name)!.toFixed(4)})`;
  for (const c of ordered) {
    if (c === best) continue;
    const cmp = pairedAucComparison(labels, c.scores, best.scores, options);
    results.find((r) => r.name === c.name)!.versusBest = { difference: cmp.difference, lower: cmp.lower, upper: cmp.upper };
    // Simpler than the best and within noise: the interval of (simpler − best) reaches 0, or the gap is immaterial.
    if (chosen === best && simplicity(c.name) < simplicity(best.name) && notWorseBeyondNoise(cmp)) {
      chosen = c;
      reason =
        `"${c.name}" (validation AUC ${cmp.aucA.toFixed(4)}) is simpler than the best, "${best.name}" (${cmp.aucB.toFixed(4)}), ` +
        `and ${cmp.upper >= 0 ? 'not worse beyond noise' : `worse by less than the ${AUC_TOLERANCE} that counts`} ` +
        `(difference ${cmp.difference.toFixed(4)}, ${Math.round(cmp.confidence * 100)} % interval ${cmp.lower.toFixed(4)} .. ${cmp.upper.toFixed(4)})`;
    }
  }
  return { chosen: chosen.name, reason, validation, candidates: results };
}
