/**
 * Helpers for the model tests: tiny specs, seeded synthetic shard batches with a planted signal, and a
 * plain-autodiff LSTM to check the hand-written backward pass against.
 */
import * as tf from '@tensorflow/tfjs';
import { Field, Float32, Int32, Int8, List, makeData, RecordBatch, Struct, Utf8, vectorFromArray, type Vector } from 'apache-arrow';
import type { ModelSpec } from '../../proto/model-spec.js';
import { shardSchema, type SequenceBatch, type TokenColumn } from '../../proto/shard-batch.js';

export const PRODUCTS = ['shoes', 'bags', 'hats'];
/** Item id whose presence among a customer's last events makes each product a purchase. */
export const PLANTED_ITEM: Record<string, number> = { shoes: 7, bags: 11, hats: 13 };
export const RECENT = 6;

export function tinySpec(architecture: ModelSpec['architecture'], overrides: Partial<ModelSpec> = {}): ModelSpec {
  return {
    architecture,
    product: architecture === 'attention' ? null : 'shoes',
    products: PRODUCTS,
    vocabSizes: { item: 40, category: 12, event: 6 },
    featureNames: ['dt', 'age'],
    wideFeatures: [],
    maxLength: 12,
    embeddingDim: 6,
    hiddenUnits: 8,
    denseUnits: 6,
    learningRate: 0.02,
    batchSize: 32,
    positiveWeight: 1,
    seed: 7,
    // What the planner gives attention models (coordinator/train): the head also reads the last state.
    ...(architecture === 'attention' ? { headReadsLastState: true } : {}),
    ...overrides,
  };
}

export interface SyntheticOptions {
  size: number;
  maxLength: number;
  seed: number;
  vocab?: Partial<Record<TokenColumn, number>>;
  /** Share of rows with split = 1. @default 0.25 */
  validationShare?: number;
  /** Share of rows that get a planted item among their last RECENT events. @default 0.35 */
  plantedShare?: number;
}

/**
 * Customers with random histories (some empty); a product is bought when its planted item is among the
 * customer's last RECENT events. Planted items also appear early in other histories, where they mean nothing.
 */
export function syntheticBatch(o: SyntheticOptions): SequenceBatch {
  const rand = mulberry(o.seed);
  const L = o.maxLength;
  const vocab = { item: 40, category: 12, event: 6, ...o.vocab };
  const planted = new Set(Object.values(PLANTED_ITEM));
  const randomItem = () => {
    let v: number;
    do v = 2 + Math.floor(rand() * (vocab.item - 2));
    while (planted.has(v));
    return v;
  };
  const tokens = { item: new Int32Array(o.size * L), category: new Int32Array(o.size * L), event: new Int32Array(o.size * L) };
  const features = new Float32Array(o.size * L * 2);
  const labels = new Int8Array(o.size * PRODUCTS.length);
  const historyLength = new Int32Array(o.size);
  const split = new Int8Array(o.size);
  for (let r = 0; r < o.size; r++) {
    const n = rand() < 0.08 ? 0 : 1 + Math.floor(rand() * L);
    historyLength[r] = n;
    split[r] = rand() < (o.validationShare ?? 0.25) ? 1 : 0;
    for (let t = L - n; t < L; t++) {
      tokens.item[r * L + t] = randomItem();
      tokens.category[r * L + t] = 2 + Math.floor(rand() * (vocab.category - 2));
      tokens.event[r * L + t] = 2 + Math.floor(rand() * (vocab.event - 2));
      features[(r * L + t) * 2] = rand() * 3;
      features[(r * L + t) * 2 + 1] = (L - t) / L;
    }
    if (n === 0) continue;
    if (rand() < (o.plantedShare ?? 0.35)) {
      const p = Math.floor(rand() * PRODUCTS.length);
      const t = L - 1 - Math.floor(rand() * Math.min(RECENT, n));
      tokens.item[r * L + t] = PLANTED_ITEM[PRODUCTS[p]!]!;
    } else if (n > RECENT && rand() < 0.5) {
      // a decoy: a planted item too long ago to count
      const t = L - n + Math.floor(rand() * (n - RECENT));
      tokens.item[r * L + t] = PLANTED_ITEM[PRODUCTS[Math.floor(rand() * PRODUCTS.length)]!]!;
    }
    for (let k = 0; k < PRODUCTS.length; k++) {
      const item = PLANTED_ITEM[PRODUCTS[k]!]!;
      for (let t = L - Math.min(RECENT, n); t < L; t++) if (tokens.item[r * L + t] === item) labels[r * PRODUCTS.length + k] = 1;
    }
  }
  return {
    size: o.size,
    maxLength: L,
    customerIds: Array.from({ length: o.size }, (_, i) => `c${o.seed}-${i}`),
    historyLength,
    tokens,
    features,
    featureNames: ['dt', 'age'],
    products: PRODUCTS,
    wide: new Float32Array(0),
    wideFeatures: [],
    labels,
    weight: new Float32Array(o.size).fill(1),
    split,
    snapshot: new Int8Array(o.size),
  };
}

export function mulberry(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The LSTM recurrence written naively with taped tf ops (Keras gate order i, f, c, o). */
export function referenceRecurrence(xp: tf.Tensor3D, u: tf.Tensor2D): tf.Tensor3D {
  const [steps, batch, gates] = xp.shape;
  const units = gates / 4;
  let h: tf.Tensor2D = tf.zeros([batch, units]);
  let c: tf.Tensor2D = tf.zeros([batch, units]);
  const out: tf.Tensor2D[] = [];
  for (let t = 0; t < steps; t++) {
    const z = tf.add(tf.reshape(tf.slice(xp, [t, 0, 0], [1, batch, gates]), [batch, gates]), tf.matMul(h, u));
    const [zi, zf, zc, zo] = tf.split(z, 4, 1);
    c = tf.add(tf.mul(tf.sigmoid(zf!), c), tf.mul(tf.sigmoid(zi!), tf.tanh(zc!)));
    h = tf.mul(tf.sigmoid(zo!), tf.tanh(c));
    out.push(h);
  }
  return tf.stack(out) as tf.Tensor3D;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * The batch as the shard record batch the coordinator ships (proto/shard-batch.ts schema): lists hold only
 * the real events, which toSequenceBatch left-pads again.
 */
export function toShardRecordBatch(b: SequenceBatch, asOf = '2017-12-02'): RecordBatch {
  const L = b.maxLength;
  const F = b.featureNames.length;
  const tokenColumns = (['item', 'category', 'event'] as const).filter((c) => b.tokens[c]);
  const schema = shardSchema({ tokenColumns: [...tokenColumns], numericColumns: [], products: b.products, labelled: b.labels !== null, asOf, maxLength: L, wideFeatures: b.wideFeatures });
  const W = b.products.length * b.wideFeatures.length;
  const lists = (type: Int32 | Float32 | Int8, rows: (r: number) => number[]) =>
    vectorFromArray(Array.from({ length: b.size }, (_, r) => rows(r)), new List(new Field('item', type, true)));
  const events = (r: number) => Array.from({ length: b.historyLength[r]! }, (_, k) => L - b.historyLength[r]! + k);
  const children: Vector[] = [vectorFromArray(b.customerIds, new Utf8()), vectorFromArray(Array.from(b.historyLength), new Int32())];
  for (const c of tokenColumns) children.push(lists(new Int32(), (r) => events(r).map((t) => b.tokens[c]![r * L + t]!)));
  b.featureNames.forEach((_, k) => children.push(lists(new Float32(), (r) => events(r).map((t) => b.features[(r * L + t) * F + k]!))));
  children.push(lists(new Float32(), (r) => Array.from(b.wide.subarray(r * W, (r + 1) * W))));
  if (b.labels) children.push(lists(new Int8(), (r) => Array.from(b.labels!.subarray(r * b.products.length, (r + 1) * b.products.length))));
  children.push(vectorFromArray(Array.from(b.weight), new Float32()), vectorFromArray(Array.from(b.split), new Int8()), vectorFromArray(Array.from(b.snapshot), new Int8()));
  const data = makeData({ type: new Struct(schema.fields), length: b.size, nullCount: 0, children: children.map((v) => v.data[0]!) });
  return new RecordBatch(schema, data);
}
