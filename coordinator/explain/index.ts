/**
 * Why a customer got their scores on a night: each model's score with the events that raised it most
 * (gradient × input, integrated along the path from padding; see worker/model/explain.ts) and, for the
 * attention model, the events it attended to most. It runs in this process with tfjs, on the models the
 * night was scored with and on the customer's sequence exactly as the workers received it, and shows the
 * events as the input had them: time, event type, item and category.
 */
import type { Job } from '../../jobs/job.js';
import { jobAggregateLayout, rawAggregate } from '../features/index.js';
import { InputError, UsageError } from '../../core/errors.js';
import { readUtf8Column, toSequenceBatch, type SequenceBatch, type TokenColumn } from '../../proto/shard-batch.js';
import { lastPositions, loadArtifact, modelFromWeights, selectBackend, selectRows, type ExplainedEvent } from '../../worker/model/index.js';
import { modelsFor, requireJson, runFiles, runFolder, type ModelEntry, type ModelsFile } from '../pipeline/index.js';
import { FIRST_TOKEN_ID, UNKNOWN_ID, readShard, shardsOfCustomerId, type PreprocessResult, type Vocabulary } from '../preprocess/index.js';

export interface ExplainCustomerOptions {
  job: Job;
  /** The scored night (its run folder must hold preprocess and trained models). */
  date: string;
  customerId: string;
  /** Only the models for this product. @default every model; the attention model explains its customer's top product */
  product?: string;
  /** Events per list. @default 5 */
  top?: number;
  /** Where the tfjs runtime line goes. @default a debug event through core/log.ts */
  log?: (line: string) => void;
}

/** One event of the customer's history, as the input had it. */
export interface EventView {
  /** Event time, ISO 8601 UTC to the second. */
  at: string;
  /** 0 for the latest event before the as-of time. */
  eventsAgo: number;
  eventType: string;
  item: string | null;
  category: string | null;
  /** byGradient: the event's contribution to the logit. byAttention: its attention weight. */
  contribution: number;
}

export interface ModelExplanation {
  model: string;
  modelVersion: string;
  architecture: ModelEntry['architecture'];
  product: string;
  score: number;
  byGradient: EventView[];
  /** Attention models only. */
  byAttention: EventView[] | null;
  /** The aggregate features that raised the logit most (weight × value), for models that read them. */
  byFeature: FeatureView[] | null;
}

export interface FeatureView {
  name: string;
  /** The raw value (count, sum, days; null for "no such event in the lookback"). */
  value: number | null;
  contribution: number;
}

export interface CustomerExplanation {
  account: string;
  date: string;
  customerId: string;
  /** Features use only events before this date. */
  asOf: string;
  /** Events in the lookback window (the sequence holds at most the model's max length of them). */
  historyLength: number;
  /** The lookback window's length: features use events in [asOf − lookbackDays, asOf). */
  lookbackDays: number;
  models: ModelExplanation[];
}

export async function explainCustomer(o: ExplainCustomerOptions): Promise<CustomerExplanation> {
  const folder = runFolder(o.job, o.date);
  const pre = await requireJson<PreprocessResult>(runFiles(folder).preprocess, 'preprocess', folder);
  if (!pre.score) throw new InputError(`preprocess for ${o.date} built no score set: rerun 'nextbuy preprocess --account ${folder.account} --date ${o.date}'`);
  const entries = chooseModels(await modelsFor(folder), o.product);
  const found = await findCustomer(pre, o.job, o.customerId);
  if (!found) {
    throw new UsageError(
      `customer "${o.customerId}" is not among the ${pre.score.customers.toLocaleString('en-US')} customers scored for ${o.date} ` +
        `(a customer is scored when they have an event before the as-of date ${pre.score.asOf}): check the id`,
    );
  }
  await selectBackend(o.log ? { log: o.log } : {});
  const asOfMs = Date.parse(`${pre.score.asOf}T00:00:00Z`);
  const models: ModelExplanation[] = [];
  for (const entry of entries) {
    const artifact = await loadArtifact(entry.dir);
    const model = modelFromWeights(artifact.spec, artifact.weights);
    try {
      const batch = lastPositions(found, artifact.spec.maxLength);
      const e = model.explain(batch, 0, { top: o.top ?? 5, product: entry.architecture === 'attention' ? o.product : undefined });
      const view = (events: ExplainedEvent[]) => events.map((x) => eventView(x, batch, pre.vocabulary, asOfMs));
      models.push({
        model: entry.name,
        modelVersion: entry.modelVersion,
        architecture: entry.architecture,
        product: e.product,
        score: e.score,
        byGradient: view(e.byGradient),
        byAttention: e.byAttention ? view(e.byAttention) : null,
        byFeature: e.byFeature ? e.byFeature.map((f) => ({ name: f.name, value: rawValue(o.job, f.name, f.value), contribution: f.contribution })) : null,
      });
    } finally {
      model.dispose();
    }
  }
  return { account: folder.account, date: o.date, customerId: o.customerId, asOf: pre.score.asOf, historyLength: found.historyLength[0]!, lookbackDays: o.job.sequence.lookbackDays, models };
}

/** An aggregate's raw value back from what the model read (null: no such event in the lookback). */
function rawValue(job: Job, name: string, transformed: number): number | null {
  const feature = jobAggregateLayout(job).features.find((f) => f.name === name);
  const raw = feature ? rawAggregate(feature.kind, transformed, job.sequence.lookbackDays) : Math.sign(transformed) * Math.expm1(Math.abs(transformed));
  return Number.isNaN(raw) ? null : Math.round(raw * 1000) / 1000;
}

function chooseModels(night: ModelsFile, product: string | undefined): ModelEntry[] {
  if (product === undefined) return night.models;
  if (!night.products.includes(product)) throw new UsageError(`no model of this night scores product "${product}": use one of ${night.products.join(', ')}`);
  return night.models.filter((m) => m.architecture === 'attention' || m.product === product);
}

/** The customer's row as a one-row batch, read from the shard the customer hashes to (then every shard, for shards written otherwise). */
async function findCustomer(pre: PreprocessResult, job: Job, customerId: string): Promise<SequenceBatch | null> {
  const shards = pre.score!.shards;
  const homeIds = new Set((await shardsOfCustomerId(customerId, job.shards.count)).map((s) => `score-${s}`));
  const home = shards.filter((s) => homeIds.has(s.id));
  for (const shard of [...home, ...shards.filter((s) => !homeIds.has(s.id))]) {
    for await (const batch of readShard(shard.file)) {
      const row = readUtf8Column(batch.getChild('customer_id')!).indexOf(customerId);
      if (row >= 0) return selectRows(toSequenceBatch(batch), [row]);
    }
  }
  return null;
}

function eventView(e: ExplainedEvent, batch: SequenceBatch, vocabulary: Vocabulary, asOfMs: number): EventView {
  const ageAt = batch.featureNames.indexOf('age');
  const age = batch.features[e.position * batch.featureNames.length + ageAt]!; // log1p(seconds before the as-of time)
  const token = (column: TokenColumn) => {
    const id = e.tokens[column];
    if (id === undefined) return null;
    return id === UNKNOWN_ID ? '(rare or unseen)' : (vocabulary[column]?.[id - FIRST_TOKEN_ID] ?? '(rare or unseen)');
  };
  return {
    at: new Date(Math.round((asOfMs - Math.expm1(age) * 1000) / 1000) * 1000).toISOString().replace('.000Z', 'Z'),
    eventsAgo: e.eventsAgo,
    eventType: token('event') ?? '?',
    item: token('item'),
    category: token('category'),
    contribution: e.contribution,
  };
}
