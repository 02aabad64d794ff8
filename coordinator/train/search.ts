/**
 * Random search over hyperparameters — the simplest thing that works. Trials are spread across the
 * workers (each trial trains on one worker over every shard, trials run side by side), and the best
 * trial by validation AUC wins — an AUC over the products with at least MIN_HELD_OUT_POSITIVES
 * validation buyers only; where no product has that many, the configuration as given (trial 0) is kept,
 * with a warning, rather than a trial picked on noise.
 */
import type { ModelSpec } from '../../proto/model-spec.js';
import { mulberry32 } from '../../core/random.js';
import { MIN_HELD_OUT_POSITIVES } from '../evaluate/index.js';
import { meanProductAuc } from './auc.js';
import type { TrainParticipant } from './participant.js';
import { trainModel, type TrainedModel, type TrainModelOptions } from './trainer.js';

export interface Trial {
  index: number;
  spec: ModelSpec;
}

/** Trial 0 is the job's own configuration; the others are sampled around it. */
export function sampleTrials(base: ModelSpec, trials: number, seed: number): Trial[] {
  const random = mulberry32(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
  const out: Trial[] = [{ index: 0, spec: base }];
  for (let i = 1; i < trials; i++) {
    out.push({
      index: i,
      spec: {
        ...base,
        learningRate: Number((base.learningRate * 10 ** (random() * 2 - 1)).toPrecision(3)),
        embeddingDim: pick([8, 16, 32]),
        hiddenUnits: pick([16, 32, 64]),
        maxLength: Math.max(1, Math.round(base.maxLength * pick([0.5, 0.75, 1]))),
        positiveWeight: Number((base.positiveWeight * pick([0.5, 1, 2])).toPrecision(4)),
        seed: base.seed + i,
      },
    });
  }
  return out;
}

export interface SearchResult {
  best: TrainedModel;
  trials: { index: number; spec: ModelSpec; validationAuc: number; bestEpoch: number; worker: string }[];
  /** Why the search kept the configuration as given; null when it picked by validation AUC. */
  warning: string | null;
}

/**
 * The AUC a trial is judged on: the mean over the products whose validation rows hold at least
 * MIN_HELD_OUT_POSITIVES buyers; NaN when none does.
 */
export function selectionAuc(model: TrainedModel): number {
  const { labels, scores } = model.validation;
  const width = model.spec.architecture === 'attention' ? model.spec.products.length : 1;
  const rows = labels.length / width;
  const kept: number[] = [];
  for (let j = 0; j < width; j++) {
    let positives = 0;
    for (let i = 0; i < rows; i++) positives += labels[i * width + j]!;
    if (positives >= MIN_HELD_OUT_POSITIVES) kept.push(j);
  }
  if (kept.length === 0) return Number.NaN;
  if (kept.length === width) return model.bestAuc;
  const pick = <T extends Int8Array | Float32Array>(a: T, make: (n: number) => T): T => {
    const out = make(rows * kept.length);
    for (let i = 0; i < rows; i++) kept.forEach((j, k) => (out[i * kept.length + k] = a[i * width + j]!));
    return out;
  };
  return meanProductAuc(pick(labels, (n) => new Int8Array(n)), pick(scores, (n) => new Float32Array(n)), kept.length);
}

export async function randomSearch(
  o: Omit<TrainModelOptions, 'spec' | 'participants' | 'checkpointDir'> & {
    trials: Trial[];
    participants: TrainParticipant[];
    checkpointDir: (trial: number) => string;
  },
): Promise<SearchResult> {
  const queue = [...o.trials];
  const results: { trial: Trial; model: TrainedModel; worker: string }[] = [];
  await Promise.all(
    o.participants.map(async (p) => {
      for (let t = queue.shift(); t; t = queue.shift()) {
        const model = await trainModel({ ...o, spec: t.spec, participants: [p], checkpointDir: o.checkpointDir(t.index) });
        results.push({ trial: t, model, worker: p.id });
      }
    }),
  );
  results.sort((a, b) => a.trial.index - b.trial.index);
  const judged = results.map((r) => ({ ...r, auc: selectionAuc(r.model) }));
  const asGiven = judged.find((r) => r.trial.index === 0) ?? judged[0]!;
  const noise = judged.every((r) => Number.isNaN(r.auc));
  const best = noise ? asGiven : judged.reduce((a, b) => (b.auc > a.auc || Number.isNaN(a.auc) ? b : a));
  return {
    warning: noise
      ? `no product has ${MIN_HELD_OUT_POSITIVES} validation buyers: kept the configuration as given (trial ${asGiven.trial.index}) rather than pick a trial on noise`
      : null,
    best: best.model,
    trials: results.map((r) => ({ index: r.trial.index, spec: r.trial.spec, validationAuc: r.model.bestAuc, bestEpoch: r.model.bestEpoch, worker: r.worker })),
  };
}
