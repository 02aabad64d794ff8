/** Trains the job's models on the training set's shards and stores each as a versioned artifact. */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Job } from '../../jobs/job.js';
import type { TokenColumn } from '../../proto/shard-batch.js';
import type { PreprocessResult } from '../preprocess/index.js';
import { planModels, trainAll } from '../train/index.js';
import { writeModelArtifact } from './artifacts.js';
import { type RunFolder } from './run-folder.js';
import { writeJsonDurably } from '../../core/durable-fs.js';
import { files, type ModelsFile } from './state.js';
import type { WorkerSession } from './workers.js';
import { InputError } from '../../core/errors.js';

export interface TrainStageOptions {
  job: Job;
  folder: RunFolder;
  pre: PreprocessResult;
  session: WorkerSession;
  onEpoch?: (model: string, epoch: number, validationAuc: number) => void;
  /** A graceful stop. @default none */
  stop?: AbortSignal;
}

export function featureNames(job: Job): string[] {
  return ['dt', 'age', ...job.columns.numeric.map((c) => `num_${c.column}`)];
}

export function vocabSizes(job: Job, pre: Pick<PreprocessResult, 'vocabulary'>): Partial<Record<TokenColumn, number>> {
  const sizes: Partial<Record<TokenColumn, number>> = { event: pre.vocabulary.event.length + 2 };
  if (job.columns.item) sizes.item = (pre.vocabulary.item?.length ?? 0) + 2;
  if (job.columns.category) sizes.category = (pre.vocabulary.category?.length ?? 0) + 2;
  return sizes;
}

export async function trainStage(o: TrainStageOptions): Promise<ModelsFile> {
  const set = o.pre.train;
  if (!set) throw new InputError(`preprocess for ${o.folder.date} built no training set: rerun 'nextbuy preprocess'`);
  const products = o.pre.products.map((p) => p.name);
  const plans = planModels(o.job, products, vocabSizes(o.job, o.pre), featureNames(o.job), o.pre.aggregateFeatures ?? [], set);
  const trained = await trainAll({
    job: o.job,
    plans,
    datasetId: `${o.folder.runId}/train`,
    shards: set.shards,
    participants: o.session.participants(),
    checkpointDir: path.join(o.folder.dir, 'checkpoints'),
    stop: o.stop,
    onEpoch: (name, m) => o.onEpoch?.(name, m.epoch, m.validationAuc),
  });
  const models: ModelsFile = { runId: o.folder.runId, trainedAsOf: set.asOf, products, models: [] };
  for (const t of trained) {
    const digest = createHash('sha256').update(new Uint8Array(t.model.weights.buffer, t.model.weights.byteOffset, t.model.weights.byteLength)).digest('hex');
    const modelVersion = `${t.name}-${set.asOf.replaceAll('-', '')}-${digest.slice(0, 8)}`;
    const dir = path.join(o.folder.modelsDir, modelVersion);
    await writeModelArtifact(dir, {
      modelVersion,
      spec: t.spec,
      weights: t.model.weights,
      vocabulary: o.pre.vocabulary,
      preprocessing: { products: o.pre.products, sequence: o.job.sequence, label: o.job.label, featureNames: featureNames(o.job) },
      trainingWindow: { asOf: set.asOf, lookbackDays: o.job.sequence.lookbackDays, horizonDays: o.job.label.horizonDays },
      metrics: { bestEpoch: t.model.bestEpoch, validationAuc: t.model.bestAuc, history: t.model.history, search: t.search },
    });
    await writeJsonDurably(path.join(dir, 'validation.json'), {
      customerIds: t.model.validation.customerIds,
      scores: Array.from(t.model.validation.scores),
      labels: Array.from(t.model.validation.labels),
    });
    models.models.push({
      name: t.name,
      architecture: t.spec.architecture,
      product: t.spec.product,
      modelVersion,
      dir,
      bestEpoch: t.model.bestEpoch,
      validationAuc: t.model.bestAuc,
      history: t.model.history,
      search: t.search,
    });
  }
  await writeJsonDurably(files(o.folder).models, models);
  await writeJsonDurably(files(o.folder).latestModels, models);
  return models;
}
