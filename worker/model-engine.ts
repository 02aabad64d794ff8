/**
 * The real WorkerEngine: scores with ONNX Runtime (tfjs when an artifact has no ONNX graph or ONNX
 * Runtime cannot load it) and trains with tfjs for the coordinator's data-parallel trainer (local SGD
 * with periodic weighted averaging).
 *
 * Training state per dataset + spec: the model and its Adam moments stay on the worker, so successive
 * rounds continue the optimizer — as long as rounds arrive consecutively (round = previous + 1). Any other
 * round number (0, a repeat after a retry, a jump after a resume) starts Adam afresh, which is what makes a
 * resumed or retried run reproducible. Rows are drawn in one seeded order per seed: round r takes the
 * localSteps batches after round r − 1's, so with a seed per epoch and rounds numbered from 0 in each, an
 * epoch covers the worker's rows once (in sorted shard order, whatever order the shards arrived in).
 */
import { ModelError, UsageError } from '../core/errors.js';
import { log as processLog, type LogFields, type LogLevel } from '../core/log.js';
import { WORKER_ENV } from '../proto/index.js';
import type { SequenceBatch } from '../proto/shard-batch.js';
import type { ScoredBatch, TrainRoundInput, TrainRoundOutput, ValidateInput, ValidateOutput, WorkerEngine } from './engine.js';
import {
  artifactFromFiles,
  concatBatches,
  createModel,
  labelledScores,
  lastPositions,
  modelFromWeights,
  ONNX_DEVICES,
  OnnxScorer,
  onnxRuntimes,
  type OnnxDevice,
  parseSpec,
  rowsOfSplit,
  selectBackend,
  specKey,
  type BackendChoice,
  type ModelSpec,
  type SequenceModel,
} from './model/index.js';

export interface ModelEngineOptions {
  /** Threads ONNX Runtime uses per scoring call. @default 1 */
  scoringThreads?: number;
  /**
   * ONNX Runtime's execution provider: 'cuda' on GPU pods (the launcher sets NEXTBUY_ONNX_DEVICE there),
   * 'cpu', or 'auto' (CUDA where its library and a GPU are present). @default NEXTBUY_ONNX_DEVICE, else 'auto'
   */
  onnxDevice?: OnnxDevice;
  /** Models with optimizer state kept for training (dataset + spec); the least recently used beyond are dropped. @default 4 */
  maxTrainingModels?: number;
  /** Log lines (runtime choice, fallbacks) as text. @default structured events through core/log.ts (the choices at debug, fallbacks at warn) */
  log?: (line: string) => void;
}

interface LoadedModel {
  spec: ModelSpec;
  runtime: string;
  score(batch: SequenceBatch, products?: string[]): Promise<Float32Array>;
  dispose(): Promise<void>;
}

interface TrainingState {
  model: SequenceModel;
}

/**
 * Joined row sets kept: train and validation per replica this worker computes (a single worker computes
 * every replica: 4 by default), with room for a change of assignment.
 */
const ROW_CACHE_ENTRIES = 16;

export function createModelEngine(options: ModelEngineOptions = {}): WorkerEngine {
  const device = options.onnxDevice ?? (process.env[WORKER_ENV.onnxDevice] || 'auto');
  if (!(ONNX_DEVICES as readonly string[]).includes(device)) throw new UsageError(`${WORKER_ENV.onnxDevice} must be one of ${ONNX_DEVICES.join(', ')}, got "${device}"`);
  return new ModelEngine({ ...options, onnxDevice: device as OnnxDevice });
}

class ModelEngine implements WorkerEngine {
  private readonly backend: Promise<BackendChoice>;
  private chosen: BackendChoice | null = null;
  private readonly loaded = new Map<string, LoadedModel>();
  /** datasetId → shardId → rows. */
  private readonly shards = new Map<string, Map<string, SequenceBatch>>();
  private readonly rowCache = new Map<string, SequenceBatch | null>();
  /** Insertion order = least recently used first. */
  private readonly training = new Map<string, TrainingState>();

  constructor(private readonly options: ModelEngineOptions) {
    this.backend = selectBackend({ log: (line) => this.say('debug', 'runtime.tfjs', { note: line }, line) }).then((c) => (this.chosen = c));
    this.backend.catch(() => {}); // reported by the first call that needs it
  }

  runtimes(): string[] {
    return [...onnxRuntimes(), this.chosen?.name ?? 'tfjs (starting)'];
  }

  async ready(): Promise<void> {
    await this.backend.catch(() => {});
  }

  /** One line: as text to options.log, else as an event with `fields`. */
  private say(level: LogLevel, event: string, fields: LogFields, line: string): void {
    if (this.options.log) this.options.log(line);
    else processLog[level](event, fields);
  }

  async loadModel(modelVersion: string, files: Map<string, Uint8Array>): Promise<{ runtime: string; note: string }> {
    const artifact = artifactFromFiles(files);
    let fallbackWhy = 'the artifact has no ONNX graph (its architecture could not be exported)';
    if (artifact.onnx) {
      try {
        const scorer = await OnnxScorer.create(artifact.onnx, { threads: this.options.scoringThreads ?? 1, device: this.options.onnxDevice });
        // Which provider scores, on every load; a GPU pod scoring on the CPU is a warning.
        this.say(
          scorer.fellBack ? 'warn' : 'debug',
          'model.runtime',
          { model: modelVersion, runtime: scorer.runtime, note: scorer.note },
          `nextbuy worker: model ${modelVersion} scores with ${scorer.runtime}${scorer.fellBack ? ` (warning: CUDA was asked for and the CPU scores instead: ${scorer.note})` : ` (${scorer.note})`}`,
        );
        const onnx: LoadedModel = { spec: scorer.spec, runtime: scorer.runtime, score: (b, p) => scorer.score(b, p), dispose: () => scorer.dispose() };
        return this.install(modelVersion, onnx, scorer.note);
      } catch (e) {
        fallbackWhy = `ONNX Runtime could not load its graph (${(e as Error).message})`;
      }
    }
    const choice = await this.backend;
    const model = modelFromWeights(artifact.spec, artifact.weights);
    const note = `${fallbackWhy}; scoring with ${choice.note}`;
    this.say('warn', 'model.runtime_fallback', { model: modelVersion, runtime: choice.name, note }, `nextbuy worker: model ${modelVersion} falls back to tfjs scoring: ${note}`);
    return this.install(modelVersion, { spec: model.spec, runtime: choice.name, score: async (b, p) => model.predict(b, p), dispose: async () => model.dispose() }, note);
  }

  private async install(modelVersion: string, model: LoadedModel, note: string): Promise<{ runtime: string; note: string }> {
    const previous = this.loaded.get(modelVersion);
    this.loaded.set(modelVersion, model);
    await previous?.dispose();
    return { runtime: model.runtime, note };
  }

  async score(batch: SequenceBatch, modelVersions: string[], products: string[]): Promise<ScoredBatch> {
    const parts: { columns: ScoredBatch['columns']; scores: Float32Array }[] = [];
    for (const version of modelVersions) {
      const model = this.loaded.get(version);
      if (!model) throw new ModelError(`model ${version} is not loaded on this worker: send LoadModel before Score`);
      if (model.spec.architecture !== 'attention') {
        parts.push({ columns: [{ modelVersion: version, product: model.spec.product! }], scores: await model.score(lastPositions(batch, model.spec.maxLength)) });
      } else {
        const wanted = products.length > 0 ? products : model.spec.products;
        parts.push({ columns: wanted.map((product) => ({ modelVersion: version, product })), scores: await model.score(lastPositions(batch, model.spec.maxLength), wanted) });
      }
    }
    const columns = parts.flatMap((p) => p.columns);
    const scores = new Float32Array(batch.size * columns.length);
    let offset = 0;
    for (const part of parts) {
      const width = part.columns.length;
      for (let r = 0; r < batch.size; r++) {
        for (let k = 0; k < width; k++) scores[r * columns.length + offset + k] = part.scores[r * width + k]!;
      }
      offset += width;
    }
    return { columns, scores };
  }

  async addTrainingData(datasetId: string, shardId: string, batches: SequenceBatch[]): Promise<number> {
    const shards = this.shards.get(datasetId) ?? new Map<string, SequenceBatch>();
    this.shards.set(datasetId, shards);
    const rows = batches.length > 0 ? concatBatches(batches) : null;
    if (rows) shards.set(shardId, rows);
    else shards.delete(shardId);
    for (const key of [...this.rowCache.keys()]) if (key.startsWith(`${datasetId}\n`)) this.rowCache.delete(key);
    return rows?.size ?? 0;
  }

  async trainRound(input: TrainRoundInput): Promise<TrainRoundOutput> {
    await this.backend;
    const spec = parseSpec(input.specJson);
    const state = this.trainingState(input.datasetId, spec);
    state.model.setWeights(input.weights);
    // Adam starts afresh every round: a round is then a pure function of its inputs, so the coordinator
    // can give a replica to any worker (or recompute a lost worker's replica) and get the same bytes.
    state.model.resetOptimizer();
    const rows = this.rowsOf(input.datasetId, input.shardIds, 0, spec.maxLength);
    if (!rows || input.localSteps === 0) return { weights: input.weights, examples: 0, loss: 0 };
    // One seeded row order per seed (the coordinator changes it per epoch); round r continues where round r − 1
    // stopped, so the rounds of an epoch cover the rows once before any repeats.
    // One step at a time, yielding in between, so that Health calls are answered while a long round runs:
    // a worker that trains is busy, not dead.
    const startStep = input.round * input.localSteps;
    let lossSum = 0;
    let examples = 0;
    for (let k = 0; k < input.localSteps; k++) {
      const r = state.model.trainSteps(rows, { steps: 1, seed: input.seed, startStep: startStep + k });
      lossSum += r.loss * r.examples;
      examples += r.examples;
      await new Promise((resolve) => setImmediate(resolve));
    }
    return { weights: state.model.getWeights(), examples, loss: examples > 0 ? lossSum / examples : 0 };
  }

  async validate(input: ValidateInput): Promise<ValidateOutput> {
    await this.backend;
    const spec = parseSpec(input.specJson);
    const state = this.trainingState(input.datasetId, spec);
    state.model.setWeights(input.weights);
    const rows = this.rowsOf(input.datasetId, input.shardIds, 1, spec.maxLength);
    if (!rows) return { customerIds: [], scores: new Float32Array(0), labels: new Int8Array(0) };
    const { scores, labels } = labelledScores(state.model, rows);
    return { customerIds: rows.customerIds, scores, labels };
  }

  private trainingState(datasetId: string, spec: ModelSpec): TrainingState {
    const key = `${datasetId}\n${specKey(spec)}`;
    let state = this.training.get(key);
    if (state) {
      this.training.delete(key); // re-insert: most recently used last
    } else {
      state = { model: createModel(spec) };
      const max = this.options.maxTrainingModels ?? 4;
      while (this.training.size >= max) {
        const [oldest, old] = this.training.entries().next().value as [string, TrainingState];
        old.model.dispose();
        this.training.delete(oldest);
      }
    }
    this.training.set(key, state);
    return state;
  }

  /** The rows of the given split across shards, in sorted shard-id order (so the order never depends on arrival). */
  private rowsOf(datasetId: string, shardIds: string[], split: 0 | 1, maxLength: number): SequenceBatch | null {
    const ids = [...shardIds].sort();
    const key = `${datasetId}\n${split}\n${maxLength}\n${ids.join('\n')}`;
    if (this.rowCache.has(key)) return this.rowCache.get(key)!;
    const shards = this.shards.get(datasetId);
    const parts: SequenceBatch[] = [];
    for (const id of ids) {
      const shard = shards?.get(id);
      if (!shard) throw new ModelError(`this worker holds no training data for shard ${id} of dataset ${datasetId}: send it with LoadTrainingData first`);
      const rows = rowsOfSplit(shard, split);
      if (rows.size > 0) parts.push(rows);
    }
    const rows = parts.length > 0 ? lastPositions(concatBatches(parts), maxLength) : null;
    if (this.rowCache.size >= ROW_CACHE_ENTRIES) this.rowCache.delete(this.rowCache.keys().next().value!);
    this.rowCache.set(key, rows);
    return rows;
  }
}
