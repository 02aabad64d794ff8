/**
 * Random search over hyperparameters — the simplest thing that works. Trials are spread across the
 * workers (each trial trains on one worker over every shard, trials run side by side), and the best
 * trial by validation AUC wins.
 */
import type { ModelSpec } from '../../proto/model-spec.js';
import { mulberry32 } from '../../core/random.js';
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
}

export async function randomSearch(
  o: Omit<TrainModelOptions, 'spec' | 'participants' | 'checkpointDir' | 'initialWeights'> & {
    trials: Trial[];
    participants: TrainParticipant[];
    checkpointDir: (trial: number) => string;
    /** A trial's starting weights. @default its spec's seeded initial weights */
    initialWeights?: (spec: ModelSpec) => Float32Array;
  },
): Promise<SearchResult> {
  const queue = [...o.trials];
  const results: { trial: Trial; model: TrainedModel; worker: string }[] = [];
  await Promise.all(
    o.participants.map(async (p) => {
      for (let t = queue.shift(); t; t = queue.shift()) {
        const model = await trainModel({ ...o, spec: t.spec, participants: [p], checkpointDir: o.checkpointDir(t.index), initialWeights: o.initialWeights?.(t.spec) });
        results.push({ trial: t, model, worker: p.id });
      }
    }),
  );
  results.sort((a, b) => a.trial.index - b.trial.index);
  const best = results.reduce((a, b) => (b.model.bestAuc > a.model.bestAuc || Number.isNaN(a.model.bestAuc) ? b : a));
  return {
    best: best.model,
    trials: results.map((r) => ({ index: r.trial.index, spec: r.trial.spec, validationAuc: r.model.bestAuc, bestEpoch: r.model.bestEpoch, worker: r.worker })),
  };
}
