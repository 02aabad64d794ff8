/**
 * Helpers for the ensemble and evaluation tests: seeded synthetic labels and scores, and brute-force
 * metric computations written independently of coordinator/evaluate (pairs, sorts and loops, no tie groups).
 */
import { aggregateLayout, transformAggregate, type AggregateLayout } from '../../coordinator/features/index.js';
import { ShardBuilder, ShardFileWriter } from '../../coordinator/preprocess/shards.js';
import { shardSchema } from '../../proto/shard-batch.js';
import { seededRandom } from './publish.js';

export { seededRandom };

export function gaussian(random: () => number): () => number {
  return () => {
    const u = Math.max(random(), 1e-12);
    const v = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

export interface SyntheticSet {
  labels: Int8Array;
  /** Informative: a noisy view of the latent propensity. */
  informative: Float32Array;
  /** A second informative model with its own noise. */
  second: Float32Array;
  /** Pure noise, unrelated to the labels. */
  noise: Float32Array;
}

/** Buyers drawn from a latent propensity; `decimals` rounds scores so that ties occur. */
export function syntheticSet(n: number, seed: number, o: { baseLogit?: number; decimals?: number } = {}): SyntheticSet {
  const random = seededRandom(seed);
  const normal = gaussian(random);
  const round = (p: number): number => (o.decimals === undefined ? p : Math.round(p * 10 ** o.decimals) / 10 ** o.decimals);
  const base = o.baseLogit ?? -2;
  const labels = new Int8Array(n);
  const informative = new Float32Array(n);
  const second = new Float32Array(n);
  const noise = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const latent = normal();
    labels[i] = random() < sigmoid(base + 1.5 * latent) ? 1 : 0;
    informative[i] = round(sigmoid(base + 1.5 * (latent + 0.6 * normal())));
    second[i] = round(sigmoid(base + 1.2 * (latent + 0.9 * normal())));
    noise[i] = round(random());
  }
  return { labels, informative, second, noise };
}

/** AUC by comparing every positive with every negative (ties count one half), weighted by w_i·w_j. */
export function pairCountAuc(labels: Int8Array, scores: ArrayLike<number>, weights?: ArrayLike<number>): number {
  let wins = 0;
  let pairs = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < labels.length; j++) {
      if (labels[j] !== 0) continue;
      const w = (weights ? weights[i]! * weights[j]! : 1);
      pairs += w;
      if (scores[i]! > scores[j]!) wins += w;
      else if (scores[i] === scores[j]) wins += 0.5 * w;
    }
  }
  return wins / pairs;
}

export function bruteBrier(labels: Int8Array, scores: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < labels.length; i++) sum += (scores[i]! - labels[i]!) ** 2;
  return sum / labels.length;
}

export function bruteLogLoss(labels: Int8Array, scores: ArrayLike<number>, eps: number): number {
  let sum = 0;
  for (let i = 0; i < labels.length; i++) {
    const p = Math.min(Math.max(scores[i]!, eps), 1 - eps);
    sum += labels[i] === 1 ? -Math.log(p) : -Math.log(1 - p);
  }
  return sum / labels.length;
}

/** Precision among the top `k` rows of a given order, over the base rate. */
export function liftOfTopRows(labels: Int8Array, order: readonly number[], k: number): number {
  let hits = 0;
  for (let r = 0; r < k; r++) hits += labels[order[r]!]!;
  let positives = 0;
  for (const y of labels) positives += y;
  return hits / k / (positives / labels.length);
}

/** Best F1 over every threshold t ∈ scores with "score ≥ t" predicted positive, by direct counting. */
export function bruteBestF1(labels: Int8Array, scores: ArrayLike<number>): { f1: number; threshold: number } {
  const thresholds = [...new Set(Array.from(scores))].sort((a, b) => b - a);
  let best = { f1: -1, threshold: Number.NaN };
  for (const t of thresholds) {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    for (let i = 0; i < labels.length; i++) {
      const predicted = scores[i]! >= t;
      if (predicted && labels[i] === 1) tp++;
      else if (predicted) fp++;
      else if (labels[i] === 1) fn++;
    }
    const f1 = (2 * tp) / (2 * tp + fp + fn);
    if (f1 > best.f1) best = { f1, threshold: t };
  }
  return best;
}

/** Per bin of width 0.1 (score 1 in the last): [count, mean score, share of positives]. */
export function bruteCalibration(labels: Int8Array, scores: ArrayLike<number>): [number, number | null, number | null][] {
  return Array.from({ length: 10 }, (_, b) => {
    const members: number[] = [];
    for (let i = 0; i < labels.length; i++) {
      const bin = scores[i]! === 1 ? 9 : Math.floor(scores[i]! * 10);
      if (bin === b) members.push(i);
    }
    if (members.length === 0) return [0, null, null];
    const mean = members.reduce((s, i) => s + scores[i]!, 0) / members.length;
    const rate = members.reduce((s, i) => s + labels[i]!, 0) / members.length;
    return [members.length, mean, rate];
  });
}

/**
 * Writes a shard file holding only customers and their aggregate features (no events, no labels), the way
 * preprocess writes a set's `wide` column (the contract of coordinator/evaluate/aggregates.ts): raw values
 * per (customer, product), transformed; a (customer, product) without a row has zero counts and sums and no
 * recency. `extraRow` writes one more row with a customer that is already there.
 */
export async function writeFeatureShard(
  file: string,
  layout: AggregateLayout,
  rows: { customerId: string; product: string; values: ArrayLike<number | null> }[],
  o: { products?: string[]; repeat?: string } = {},
): Promise<void> {
  const products = o.products ?? [...new Set(rows.map((r) => r.product))];
  const customers = [...new Set(rows.map((r) => r.customerId)), ...(o.repeat ? [o.repeat] : [])];
  const width = layout.features.length;
  const schemaOptions = { tokenColumns: ['event' as const], numericColumns: [], products, labelled: false, asOf: '2026-01-01', maxLength: 1, wideFeatures: layout.names };
  const schema = shardSchema(schemaOptions);
  const builder = new ShardBuilder(schema, { tokenColumns: ['event'], numericCount: 0, productCount: products.length, wideFeatures: width, labelled: false, batchRows: 64 });
  const writer = await ShardFileWriter.create(file, schema);
  const byKey = new Map(rows.map((r) => [`${r.customerId}\u0000${r.product}`, r.values]));
  for (const id of customers) {
    const bytes = new TextEncoder().encode(id);
    builder.reserve(0, bytes.length);
    builder.customerBytes.set(bytes, builder.customerOffsets[builder.rows]!);
    products.forEach((product, p) => {
      const values = byKey.get(`${id}\u0000${product}`);
      layout.features.forEach((f, j) => {
        const given = values?.[j];
        const raw = given === null || given === undefined ? (f.kind === 'days' || f.kind === 'tenure' ? Number.NaN : 0) : given;
        builder.wide[(builder.rows * products.length + p) * width + j] = transformAggregate(f.kind, raw, layout.lookbackDays);
      });
    });
    builder.snapshot[builder.rows] = 0;
    builder.commit(bytes.length, 0, 0, 1, 0);
    if (builder.full) await writer.write(builder.take().batch);
  }
  if (builder.rows > 0) await writer.write(builder.take().batch);
  await writer.close();
}

/** The fixture's aggregate layout: view, cart and buy over 7 and 28 days, no numeric column. */
export const FIXTURE_LAYOUT = aggregateLayout({ eventTypes: ['view', 'cart', 'buy'], purchase: 'buy', numericColumns: [], windowsDays: [7, 28], lookbackDays: 28 });

export interface CategoryFixture {
  customerIds: string[];
  /** 'any' and the categories. */
  products: string[];
  /** Labels per product, in customer order. */
  labels: Map<string, Int8Array>;
  rows: { customerId: string; product: string; values: Float64Array }[];
}

/**
 * Customers browsing three categories (A, B, C), whose next purchase in category A or B depends on their
 * views and carts *in that category* (and recency there), not on their overall activity: the case where one
 * set of all-category counts for every product misleads. Raw values in FIXTURE_LAYOUT order.
 */
export function categoryFixture(n: number, seed: number): CategoryFixture {
  const random = seededRandom(seed);
  const poisson = (lambda: number) => {
    const limit = Math.exp(-lambda);
    let k = 0;
    for (let p = random(); p > limit; p *= random()) k++;
    return k;
  };
  const categories = ['A', 'B', 'C'];
  const products = ['any', 'A', 'B'];
  const customerIds = Array.from({ length: n }, (_, i) => `c${String(i).padStart(5, '0')}`);
  const labels = new Map(products.map((p) => [p, new Int8Array(n)]));
  const rows: CategoryFixture['rows'] = [];
  for (let i = 0; i < n; i++) {
    // counts[k][t] over 28 days, 7-day share, days since the last event per category.
    const n28 = categories.map(() => [0, 0, 0]);
    const n7 = categories.map(() => [0, 0, 0]);
    const lastEvent = categories.map(() => Number.NaN);
    const lastBuy = categories.map(() => Number.NaN);
    for (let k = 0; k < 3; k++) {
      const interest = random() < 0.5 ? 0 : 2 * random() ** 2;
      n28[k] = [poisson(0.5 + 6 * interest), poisson(0.6 * interest), poisson(0.1 + 0.2 * interest)];
      n7[k] = n28[k]!.map((c) => Array.from({ length: c }, () => random() < 0.3).filter(Boolean).length);
      const events = n28[k]!.reduce((a, b) => a + b, 0);
      if (events > 0) lastEvent[k] = (28 * random()) / (1 + 0.3 * events);
      if (n28[k]![2]! > 0) lastBuy[k] = Math.max(lastEvent[k]!, 28 * random());
    }
    const tenure = 28 + 200 * random();
    const valuesOf = (scope: number[]) => {
      const sum = (w: number[][], t: number) => scope.reduce((a, k) => a + w[k]![t]!, 0);
      const minOf = (d: number[]) => scope.reduce((a, k) => (Number.isNaN(d[k]!) ? a : Number.isNaN(a) ? d[k]! : Math.min(a, d[k]!)), Number.NaN);
      return { counts: (w: number[][]) => [0, 1, 2].map((t) => sum(w, t)), lastEvent: minOf(lastEvent), lastBuy: minOf(lastBuy) };
    };
    const all = valuesOf([0, 1, 2]);
    for (const product of products) {
      const cat = product === 'any' ? all : valuesOf([categories.indexOf(product)]);
      const byName = new Map<string, number>();
      for (const [scope, v] of [['cat', cat], ['all', all]] as const) {
        ['view', 'cart', 'buy'].forEach((t, j) => {
          byName.set(`${scope}_n_${t}_7d`, v.counts(n7)[j]!);
          byName.set(`${scope}_n_${t}_28d`, v.counts(n28)[j]!);
        });
        byName.set(`${scope}_days_since_event`, v.lastEvent);
        byName.set(`${scope}_days_since_buy`, v.lastBuy);
      }
      byName.set('tenure_days', tenure);
      rows.push({ customerId: customerIds[i]!, product, values: Float64Array.from(FIXTURE_LAYOUT.names, (name) => byName.get(name)!) });
    }
    let anyLabel = 0;
    for (const product of ['A', 'B']) {
      const k = categories.indexOf(product);
      const recent = Number.isNaN(lastEvent[k]!) ? 0 : Math.exp(-lastEvent[k]! / 5);
      const z = -4 + 0.9 * Math.log1p(n28[k]![0]!) + 1.2 * Math.log1p(n28[k]![1]!) + 1.5 * recent;
      const y = random() < sigmoid(z) ? 1 : 0;
      labels.get(product)![i] = y;
      anyLabel ||= y;
    }
    if (random() < 0.03) anyLabel = 1; // purchases in C, unrelated to A and B
    labels.get('any')![i] = anyLabel;
  }
  return { customerIds, products, labels, rows };
}

/**
 * DeLong's variance of AUC(a) − AUC(b) (b = a: of AUC(a)) straight from its definition: the kernel
 * ψ(x, y) = 1 if x > y, ½ if x = y, 0 otherwise over every positive–negative pair, its row means V10 and
 * V01, and their sample (co)variances. O(m·n): for small sets.
 */
export function bruteDeLongVariance(labels: Int8Array, a: ArrayLike<number>, b: ArrayLike<number>): number {
  const pos = [...labels.keys()].filter((i) => labels[i] === 1);
  const neg = [...labels.keys()].filter((i) => labels[i] === 0);
  const psi = (x: number, y: number) => (x > y ? 1 : x === y ? 0.5 : 0);
  const v10 = (s: ArrayLike<number>) => pos.map((i) => neg.reduce((acc, j) => acc + psi(s[i]!, s[j]!), 0) / neg.length);
  const v01 = (s: ArrayLike<number>) => neg.map((j) => pos.reduce((acc, i) => acc + psi(s[i]!, s[j]!), 0) / pos.length);
  const cov = (x: number[], y: number[]) => {
    const mx = x.reduce((p, q) => p + q, 0) / x.length;
    const my = y.reduce((p, q) => p + q, 0) / y.length;
    return x.reduce((acc, xi, k) => acc + (xi - mx) * (y[k]! - my), 0) / (x.length - 1);
  };
  const [a10, b10, a01, b01] = [v10(a), v10(b), v01(a), v01(b)];
  const s10 = cov(a10, a10) + cov(b10, b10) - 2 * cov(a10, b10);
  const s01 = cov(a01, a01) + cov(b01, b01) - 2 * cov(a01, b01);
  const same = a === b;
  return same ? cov(a10, a10) / pos.length + cov(a01, a01) / neg.length : s10 / pos.length + s01 / neg.length;
}
