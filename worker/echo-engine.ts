/**
 * A WorkerEngine without a model, for tests and the transport benchmark: every score is a pure
 * function of (customer id, model version, product), so a test can check the right score for every
 * customer, and training rounds return their input weights unchanged.
 */
import { customerIdBytesOf, type SequenceBatch, type Utf8Bytes } from '../proto/shard-batch.js';
import { ModelError } from '../core/errors.js';
import type {
  ScoredBatch,
  TrainRoundInput,
  TrainRoundOutput,
  ValidateInput,
  ValidateOutput,
  WorkerEngine,
} from './engine.js';

/** Test knobs, read from the environment by `echoOptionsFromEnv()`. */
export const ECHO_ENV = {
  /** Milliseconds to wait before scoring each batch (makes shards slow enough to interrupt). */
  delayMs: 'NEXTBUY_ECHO_DELAY_MS',
  /** Fail every batch that holds this customer id (a shard that fails wherever it goes). */
  failCustomer: 'NEXTBUY_ECHO_FAIL_CUSTOMER',
  /** "1": read every dense array of each batch, as a model would (the benchmark's densify figure). */
  touchAll: 'NEXTBUY_ECHO_TOUCH_ALL',
} as const;

export interface EchoOptions {
  /** @default 0 */
  delayMs?: number;
  /** @default none */
  failCustomer?: string;
  /** Read every dense array of each batch (forces the server's lazy densification). @default false */
  touchAll?: boolean;
}

export function echoOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): EchoOptions {
  const delay = Number(env[ECHO_ENV.delayMs] ?? 0);
  return {
    delayMs: Number.isFinite(delay) && delay > 0 ? delay : 0,
    failCustomer: env[ECHO_ENV.failCustomer] || undefined,
    touchAll: env[ECHO_ENV.touchAll] === '1',
  };
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function fnvMix(h: number, bytes: Uint8Array, start: number, end: number): number {
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i]!, FNV_PRIME);
  return Math.imul(h ^ 0xff, FNV_PRIME); // separator, so ("ab","c") and ("a","bc") differ
}

const utf8 = (s: string) => Buffer.from(s, 'utf8');

/** The FNV state after a (model version, product) pair: every score of that column starts from it. */
function columnPrefix(modelVersion: string, product: string): number {
  const version = utf8(modelVersion);
  const name = utf8(product);
  return fnvMix(fnvMix(FNV_OFFSET, version, 0, version.length), name, 0, name.length);
}

const toUnit = (h: number) => Math.fround((h >>> 0) / 4294967296);

/** FNV-1a over the UTF-8 bytes of `modelVersion`, `product` and `customerId`, mapped to [0, 1) as a float32. */
export function echoScore(customerId: string, modelVersion: string, product: string): number {
  const id = utf8(customerId);
  return toUnit(fnvMix(columnPrefix(modelVersion, product), id, 0, id.length));
}

/** echoScore of every id for one column, into scores[i × stride + column]. */
function scoreColumn(ids: Utf8Bytes, prefix: number, scores: Float32Array, stride: number, column: number): void {
  const { values, offsets } = ids;
  for (let i = 0; i < ids.length; i++) scores[i * stride + column] = toUnit(fnvMix(prefix, values, offsets[i]!, offsets[i + 1]!));
}

/** The product list a score call covers: single-product models score one column named by ''. */
function productsOrDefault(products: string[]): string[] {
  return products.length > 0 ? products : [''];
}

/** Reads one value of every dense array, which makes a lazily densified batch build them all. */
function touchDense(batch: SequenceBatch): number {
  let sum = batch.features[0] ?? 0;
  for (const t of Object.values(batch.tokens)) sum += t?.[0] ?? 0;
  return sum + (batch.historyLength[0] ?? 0) + (batch.weight[0] ?? 0) + (batch.split[0] ?? 0) + (batch.labels?.[0] ?? 0);
}

export class EchoEngine implements WorkerEngine {
  private readonly delayMs: number;
  private readonly failCustomer: string | undefined;
  private readonly touchAll: boolean;
  private readonly training = new Map<string, { customerIds: string[]; labels: Int8Array }>();

  constructor(options: EchoOptions = {}) {
    this.delayMs = options.delayMs ?? 0;
    this.failCustomer = options.failCustomer;
    this.touchAll = options.touchAll ?? false;
  }

  runtimes(): string[] {
    return ['echo'];
  }

  async loadModel(_modelVersion: string, _files: Map<string, Uint8Array>): Promise<{ runtime: string; note: string }> {
    return { runtime: 'echo', note: 'echo engine: scores are a hash of customer, model version and product' };
  }

  async score(batch: SequenceBatch, modelVersions: string[], products: string[]): Promise<ScoredBatch> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.failCustomer !== undefined && batch.customerIds.includes(this.failCustomer)) {
      throw new ModelError(`echo engine told to fail on customer ${this.failCustomer}`);
    }
    const columns = modelVersions.flatMap((modelVersion) => productsOrDefault(products).map((product) => ({ modelVersion, product })));
    const width = columns.length;
    const scores = new Float32Array(batch.size * width);
    const ids = customerIdBytesOf(batch);
    columns.forEach((c, j) => scoreColumn(ids, columnPrefix(c.modelVersion, c.product), scores, width, j));
    if (this.touchAll) touchDense(batch);
    return { columns, scores };
  }

  async addTrainingData(datasetId: string, shardId: string, batches: SequenceBatch[]): Promise<number> {
    const customerIds = batches.flatMap((b) => b.customerIds);
    const labels = new Int8Array(customerIds.length);
    let at = 0;
    for (const b of batches) {
      for (let i = 0; i < b.size; i++) labels[at++] = b.labels ? b.labels[i * b.products.length]! : 0;
    }
    this.training.set(`${datasetId}/${shardId}`, { customerIds, labels });
    return customerIds.length;
  }

  private rows(datasetId: string, shardIds: string[]) {
    return shardIds.map((s) => {
      const rows = this.training.get(`${datasetId}/${s}`);
      if (!rows) throw new ModelError(`echo engine has no training rows for dataset ${datasetId} shard ${s}: load the shard first`);
      return rows;
    });
  }

  async trainRound(input: TrainRoundInput): Promise<TrainRoundOutput> {
    const examples = this.rows(input.datasetId, input.shardIds).reduce((n, r) => n + r.customerIds.length, 0);
    return { weights: input.weights, examples, loss: 0.5 };
  }

  async validate(input: ValidateInput): Promise<ValidateOutput> {
    const rows = this.rows(input.datasetId, input.shardIds);
    const customerIds = rows.flatMap((r) => r.customerIds);
    const labels = new Int8Array(customerIds.length);
    let at = 0;
    for (const r of rows) {
      labels.set(r.labels, at);
      at += r.labels.length;
    }
    const scores = Float32Array.from(customerIds, (id) => echoScore(id, 'validate', ''));
    return { customerIds, scores, labels };
  }
}

export function createEchoEngine(options: EchoOptions = echoOptionsFromEnv()): EchoEngine {
  return new EchoEngine(options);
}
