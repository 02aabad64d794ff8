/**
 * Synchronous data-parallel training by local SGD with periodic averaging: every round, each participant
 * starts from the same weights, takes `syncEverySteps` optimizer steps on its own shards, and the trainer
 * averages the returned weights by examples seen. Averaging every few steps instead of every step cuts the
 * traffic by that factor; the optimizer (Adam) state lives on the participant that applies the updates and
 * restarts at every epoch, so an epoch checkpoint (weights only) is a complete state.
 */
import path from 'node:path';
import { ClusterError } from '../../core/errors.js';
import type { ModelSpec } from '../../proto/model-spec.js';
import type { ValidateOutput } from '../../worker/engine.js';
import { averageWeights } from './average.js';
import { loadCheckpoint, saveCheckpoint, specHash } from './checkpoint.js';
import type { TrainParticipant } from './participant.js';
import { meanProductAuc } from './auc.js';
import { initialWeights } from '../../worker/model/index.js';

export interface TrainShard {
  id: string;
  file: string;
  rows: number;
}

export interface TrainModelOptions {
  spec: ModelSpec;
  /** Names the training rows on the participants (shards are loaded once per dataset). */
  datasetId: string;
  shards: TrainShard[];
  participants: TrainParticipant[];
  epochs: number;
  /** Stop after this many epochs without a better validation AUC. */
  patience: number;
  /** Local optimizer steps between two weight averages. @default 8 */
  syncEverySteps?: number;
  /** Weights to start from. @default the spec's seeded initial weights */
  initialWeights?: Float32Array;
  /** Where epoch checkpoints go; a checkpoint of the same spec found there is resumed. */
  checkpointDir: string;
  onEpoch?: (m: EpochMetrics) => void;
  /** Test hook: called after each checkpoint; throwing simulates a coordinator killed there. */
  afterCheckpoint?: (epoch: number) => void;
}

export interface EpochMetrics {
  epoch: number;
  trainLoss: number;
  validationAuc: number;
  examples: number;
  rounds: number;
  participants: number;
  /** Weight bytes sent to and received from participants in this epoch. */
  bytesMoved: number;
  ms: number;
}

export interface TrainedModel {
  spec: ModelSpec;
  /** Weights of the best epoch by validation AUC. */
  weights: Float32Array;
  bestEpoch: number;
  bestAuc: number;
  history: EpochMetrics[];
  /** The best epoch's validation scores (for fitting ensembles). */
  validation: ValidateOutput;
  /** True when training continued from a checkpoint. */
  resumed: boolean;
}

export const DEFAULT_SYNC_EVERY_STEPS = 8;

export async function trainModel(o: TrainModelOptions): Promise<TrainedModel> {
  const syncEvery = o.syncEverySteps ?? DEFAULT_SYNC_EVERY_STEPS;
  const hash = specHash(o.spec, { shards: o.shards.map((s) => [s.id, s.rows]), epochs: o.epochs, syncEvery });
  const dir = path.join(o.checkpointDir);
  const plan = new ShardPlan(o.datasetId, o.shards, o.participants);
  await plan.loadAll();

  const resumedFrom = await loadCheckpoint(dir, hash);
  let weights = resumedFrom?.weights ?? o.initialWeights ?? initialWeights(o.spec);
  let best = resumedFrom ? { epoch: resumedFrom.state.bestEpoch, auc: resumedFrom.state.bestAuc, weights: resumedFrom.best, validation: resumedFrom.bestValidation } : null;
  const history = resumedFrom?.state.history ?? [];
  const specJson = JSON.stringify(o.spec);

  for (let epoch = (resumedFrom?.state.epoch ?? 0) + 1; epoch <= o.epochs; epoch++) {
    if (best && epoch - best.epoch > o.patience) break;
    const started = Date.now();
    const seed = epochSeed(o.spec.seed, epoch);
    const rounds = Math.max(1, Math.ceil(plan.maxRowsPerParticipant() / (o.spec.batchSize * syncEvery)));
    let lossSum = 0;
    let examples = 0;
    let bytesMoved = 0;
    for (let round = 0; round < rounds; round++) {
      const outputs = await plan.everyParticipant((p, shardIds) =>
        p.trainRound({ datasetId: o.datasetId, specJson, weights, round, localSteps: syncEvery, seed, shardIds }),
      );
      bytesMoved += outputs.reduce((s, r) => s + weights.byteLength + r.weights.byteLength, 0);
      const seen = outputs.filter((r) => r.examples > 0);
      if (seen.length === 0) continue;
      weights = averageWeights(seen);
      for (const r of seen) {
        lossSum += r.loss * r.examples;
        examples += r.examples;
      }
    }
    const validation = await validateAll(plan, o.datasetId, specJson, weights);
    const auc = meanProductAuc(validation.labels, validation.scores, o.spec.architecture === 'attention' ? o.spec.products.length : 1);
    const metrics: EpochMetrics = {
      epoch,
      trainLoss: examples > 0 ? lossSum / examples : Number.NaN,
      validationAuc: auc,
      examples,
      rounds,
      participants: plan.live().length,
      bytesMoved,
      ms: Date.now() - started,
    };
    history.push(metrics);
    o.onEpoch?.(metrics);
    if (!best || auc > best.auc || (Number.isNaN(best.auc) && !Number.isNaN(auc))) best = { epoch, auc, weights, validation };
    await saveCheckpoint(dir, {
      state: { specHash: hash, epoch, bestEpoch: best.epoch, bestAuc: best.auc, history },
      weights,
      best: best.weights,
      bestValidation: best.validation,
    });
    o.afterCheckpoint?.(epoch);
  }
  if (!best) throw new ClusterError(`training ${o.datasetId}: no epoch completed (epochs = ${o.epochs})`);
  return { spec: o.spec, weights: best.weights, bestEpoch: best.epoch, bestAuc: best.auc, history, validation: best.validation, resumed: resumedFrom !== null };
}

/** Validation rows are the participants' split = 1 rows; concatenated in participant-id order for a stable result. */
async function validateAll(plan: ShardPlan, datasetId: string, specJson: string, weights: Float32Array): Promise<ValidateOutput> {
  const parts = await plan.everyParticipant((p, shardIds) => p.validate({ datasetId, specJson, weights, shardIds }));
  const customerIds = parts.flatMap((v) => v.customerIds);
  const scores = new Float32Array(parts.reduce((s, v) => s + v.scores.length, 0));
  const labels = new Int8Array(scores.length);
  let at = 0;
  for (const v of parts) {
    scores.set(v.scores, at);
    labels.set(v.labels, at);
    at += v.scores.length;
  }
  return { customerIds, scores, labels };
}

export function epochSeed(seed: number, epoch: number): number {
  return (Math.imul(seed ^ 0x9e3779b9, 2654435761) + epoch * 40503) >>> 0;
}

/**
 * Which participant holds which shards. A participant that fails a call is dropped: its shards move to the
 * least-loaded live participants (and are loaded there), and the call is retried on the new plan.
 */
class ShardPlan {
  private readonly owner = new Map<string, TrainParticipant>();
  private readonly loaded = new Map<TrainParticipant, Set<string>>();
  private readonly dead = new Set<TrainParticipant>();
  private readonly errors: string[] = [];

  constructor(
    private readonly datasetId: string,
    private readonly shards: TrainShard[],
    private readonly participants: TrainParticipant[],
  ) {
    if (participants.length === 0) throw new ClusterError('training needs at least one worker; none is registered');
    const sorted = [...participants].sort((a, b) => a.id.localeCompare(b.id));
    [...shards].sort((a, b) => a.id.localeCompare(b.id)).forEach((s, i) => this.owner.set(s.id, sorted[i % sorted.length]!));
  }

  live(): TrainParticipant[] {
    return this.participants.filter((p) => !this.dead.has(p)).sort((a, b) => a.id.localeCompare(b.id));
  }

  maxRowsPerParticipant(): number {
    const rows = new Map<TrainParticipant, number>();
    for (const s of this.shards) rows.set(this.owner.get(s.id)!, (rows.get(this.owner.get(s.id)!) ?? 0) + s.rows);
    return Math.max(0, ...rows.values());
  }

  async loadAll(): Promise<void> {
    await this.everyParticipant(async () => undefined);
  }

  /** Runs `call` on every live participant with its shards, after making sure those shards are loaded there. */
  async everyParticipant<T>(call: (p: TrainParticipant, shardIds: string[]) => Promise<T>): Promise<T[]> {
    for (;;) {
      const live = this.live();
      if (live.length === 0) {
        throw new ClusterError(`training ${this.datasetId}: every worker failed:\n  ${this.errors.join('\n  ')}`);
      }
      const failed: { p: TrainParticipant; error: unknown }[] = [];
      const results = await Promise.all(
        live.map(async (p) => {
          try {
            const ids = this.shardsOf(p);
            await this.ensureLoaded(p, ids);
            return await call(p, ids);
          } catch (error) {
            failed.push({ p, error });
            return undefined;
          }
        }),
      );
      if (failed.length === 0) return results as T[];
      for (const { p, error } of failed) this.drop(p, error);
    }
  }

  private shardsOf(p: TrainParticipant): string[] {
    return [...this.owner].filter(([, o]) => o === p).map(([id]) => id).sort();
  }

  private async ensureLoaded(p: TrainParticipant, ids: string[]): Promise<void> {
    const have = this.loaded.get(p) ?? new Set<string>();
    this.loaded.set(p, have);
    for (const id of ids) {
      if (have.has(id)) continue;
      const shard = this.shards.find((s) => s.id === id)!;
      await p.loadShard(this.datasetId, shard);
      have.add(id);
    }
  }

  private drop(p: TrainParticipant, error: unknown): void {
    this.dead.add(p);
    this.errors.push(`${p.id}: ${(error as Error)?.message ?? String(error)}`);
    const live = this.live();
    if (live.length === 0) return;
    const load = new Map(live.map((q) => [q, this.shardsOf(q).length]));
    for (const id of this.shardsOf(p)) {
      const target = [...load].sort((a, b) => a[1] - b[1] || a[0].id.localeCompare(b[0].id))[0]![0];
      this.owner.set(id, target);
      load.set(target, load.get(target)! + 1);
    }
  }
}
