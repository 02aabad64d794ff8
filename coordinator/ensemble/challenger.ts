/**
 * Champion / challenger across nights: the night's chosen candidate (the challenger) replaces the
 * account's last published one (the champion) only if it is not worse beyond noise on the same
 * validation customers; otherwise the champion keeps scoring.
 */
import { ModelError } from '../../core/errors.js';
import { pairedAucComparison, type PairedAucComparison, type PairedComparisonOptions } from './compare.js';
import { AUC_TOLERANCE, MIN_VALIDATION_POSITIVES, notWorseBeyondNoise } from './champion.js';

export interface ChallengerDecision {
  /** 'challenger': this night's choice is published; 'champion': the previous published one scores the night. */
  winner: 'challenger' | 'champion';
  reason: string;
  /** Challenger AUC − champion AUC on the same validation customers, with its interval; null when not compared. */
  comparison: PairedAucComparison | null;
}

export interface DecideChallengerOptions extends PairedComparisonOptions {
  /** @default MIN_VALIDATION_POSITIVES */
  minPositives?: number;
}

export function decideChallenger(
  labels: Int8Array,
  challenger: Float32Array,
  champion: Float32Array,
  options: DecideChallengerOptions = {},
): ChallengerDecision {
  if (challenger.length !== labels.length || champion.length !== labels.length) {
    throw new ModelError(`champion/challenger: ${challenger.length} and ${champion.length} scores for ${labels.length} validation customers; both must score the same customers`);
  }
  let positives = 0;
  for (const y of labels) if (y === 1) positives++;
  const minPositives = options.minPositives ?? MIN_VALIDATION_POSITIVES;
  if (positives < minPositives || positives === labels.length) {
    return {
      winner: 'challenger',
      reason: `only ${positives} validation buyers among ${labels.length} customers (fewer than ${minPositives}): no comparison is meaningful, so this night's models are published`,
      comparison: null,
    };
  }
  const cmp = pairedAucComparison(labels, challenger, champion, options);
  const interval = `${Math.round(cmp.confidence * 100)} % interval ${cmp.lower.toFixed(4)} .. ${cmp.upper.toFixed(4)}; deficits up to ${AUC_TOLERANCE} never count`;
  if (!notWorseBeyondNoise(cmp)) {
    return {
      winner: 'champion',
      reason: `this night's choice is worse beyond noise than the last published model on the same validation customers (AUC ${cmp.aucA.toFixed(4)} vs ${cmp.aucB.toFixed(4)}, difference ${cmp.difference.toFixed(4)}, ${interval}): the last published model scores the night`,
      comparison: cmp,
    };
  }
  return {
    winner: 'challenger',
    reason: `this night's choice is not worse beyond noise than the last published model (AUC ${cmp.aucA.toFixed(4)} vs ${cmp.aucB.toFixed(4)}, difference ${cmp.difference.toFixed(4)}, ${interval}): it replaces it`,
    comparison: cmp,
  };
}
