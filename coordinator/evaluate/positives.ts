/**
 * How many positives a product needs before its figures mean something. Below these, an AUC's interval
 * spans most of [0, 1], a fitted ensemble or a tuning trial chases noise, and the report flags the
 * product: a warning in the log and the summary, `flags` in report.json, greyed figures in the HTML.
 *
 * Training: the training set's positives (after negative downsampling), which every model learns from.
 * Held out: the validation customers' positives (ensemble fitting, tuning, model selection) and the
 * evaluation window's (the reported figures).
 */

/** @see the module comment. */
export const MIN_TRAINING_POSITIVES = 30;
/** @see the module comment. */
export const MIN_HELD_OUT_POSITIVES = 10;

export type PositivesSet = 'training' | 'validation' | 'evaluation';

export interface ProductFlag {
  code: `few-${PositivesSet}-positives`;
  set: PositivesSet;
  positives: number;
  minimum: number;
  /** For people, e.g. "3 positives in the evaluation window (fewer than 10)". */
  message: string;
}

export type PositivesBySet = Partial<Record<PositivesSet, number | null>>;

const SET_WORDS: Record<PositivesSet, string> = {
  training: 'in training',
  validation: 'among the validation customers',
  evaluation: 'in the evaluation window',
};

/** One warning for people from a product's flags, or null without flags. */
export function positivesWarning(flags: readonly ProductFlag[]): string | null {
  return flags.length === 0 ? null : `too few positives, its figures are noise: ${flags.map((f) => f.message).join('; ')}`;
}

export function minimumPositives(set: PositivesSet): number {
  return set === 'training' ? MIN_TRAINING_POSITIVES : MIN_HELD_OUT_POSITIVES;
}

/** One flag per set whose positives are known and below its minimum. */
export function positivesFlags(positives: PositivesBySet): ProductFlag[] {
  const flags: ProductFlag[] = [];
  for (const set of ['training', 'validation', 'evaluation'] as const) {
    const count = positives[set];
    if (count === null || count === undefined) continue;
    const minimum = minimumPositives(set);
    if (count >= minimum) continue;
    flags.push({
      code: `few-${set}-positives`,
      set,
      positives: count,
      minimum,
      message: `${count} positive${count === 1 ? '' : 's'} ${SET_WORDS[set]} (fewer than ${minimum})`,
    });
  }
  return flags;
}
