/**
 * Class weights make a model over-predict the positive class by the weight's odds: training with
 * positive weight w shifts every logit by ln w. Subtracting ln w from the output bias after training
 * (a standard prior correction) turns the scores back into probabilities the actions' thresholds and
 * the Brier score can trust, without changing any ranking.
 */
import type { ModelSpec } from '../../proto/model-spec.js';
import { weightLayout } from '../../worker/model/index.js';
import type { TrainedModel } from './trainer.js';

const OUTPUT_BIAS = 'output/bias';

export function correctForClassWeight(model: TrainedModel): TrainedModel {
  const shift = Math.log(model.spec.positiveWeight);
  if (!Number.isFinite(shift) || shift === 0) return model;
  const weights = Float32Array.from(model.weights);
  weights[outputBiasOffset(model.spec)]! -= shift;
  const scores = model.validation.scores.map((p) => 1 / (1 + Math.exp(-(logit(p) - shift))));
  return { ...model, weights, validation: { ...model.validation, scores: Float32Array.from(scores) } };
}

function outputBiasOffset(spec: ModelSpec): number {
  const entry = weightLayout(spec).find((w) => w.name === OUTPUT_BIAS);
  if (!entry) throw new Error(`the ${spec.architecture} weight layout has no ${OUTPUT_BIAS}`);
  return entry.offset;
}

function logit(p: number): number {
  const q = Math.min(Math.max(p, 1e-7), 1 - 1e-7);
  return Math.log(q / (1 - q));
}
