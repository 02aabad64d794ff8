/**
 * Point-in-time aggregate features per customer and product: the "wide" input that models read beside the
 * event sequence, and the numbers the evaluation's count baselines are fitted on. One definition, so that the
 * baseline and the models always read the same values.
 *
 * They summarise the whole lookback window (not only the last maxLength events), for each product in the
 * product's category (`cat_`) and over all events (`all_`); for the product `any` both scopes coincide:
 *
 *   <scope>_n_<type>_<w>d        events of each type in the last w days (w from features.windowsDays)
 *   <scope>_days_since_event     days from the scope's last event to the as-of instant
 *   <scope>_days_since_<buy>     days from the scope's last purchase to the as-of instant
 *   <scope>_sum_<num>_<w>d       sum of each numeric column over the last w days
 *   <scope>_mean_<num>_<w>d      its mean per event over the last w days (0 without events)
 *   tenure_days                  days from the customer's first known event (any age) to the as-of instant
 *
 * Raw values: counts, sums and days; a recency with no such event in the lookback is NaN (written as NULL).
 * Model input: transformAggregate() of each raw value (log scales, "never" as lookback + 1 days), so every
 * feature lies roughly in [0, 10] without fitted standardisation.
 */
import { DAY_MS, type Job } from '../../jobs/job.js';

export type AggregateKind = 'count' | 'days' | 'sum' | 'mean' | 'tenure';
export type AggregateScope = 'cat' | 'all';

export interface AggregateFeature {
  name: string;
  kind: AggregateKind;
  scope: AggregateScope | null;
  /** Index into the event types (count) or numeric columns (sum); -1 for a recency of any event. */
  index: number;
  /** Window in days (count, sum, mean). */
  windowDays: number;
  /** Its index in the layout's windowsDays (-1 for recency and tenure). */
  windowIndex: number;
}

export interface AggregateLayoutOptions {
  eventTypes: readonly string[];
  purchase: string;
  numericColumns: readonly string[];
  /** Windows in days, ascending; each ≤ lookbackDays. */
  windowsDays: readonly number[];
  lookbackDays: number;
}

/** What the kernel accumulates and in which order the features come. */
export interface AggregateLayout extends AggregateLayoutOptions {
  features: AggregateFeature[];
  names: string[];
  purchaseIndex: number;
}

export const SCOPES: readonly AggregateScope[] = ['cat', 'all'];

/** The default windows for a lookback: 1, 7 and 28 days where they fit, and always the whole lookback. */
export function defaultWindowsDays(lookbackDays: number): number[] {
  return [...new Set([1, 7, 28].filter((w) => w < lookbackDays).concat(lookbackDays))].sort((a, b) => a - b);
}

export function aggregateLayout(o: AggregateLayoutOptions): AggregateLayout {
  const features: Omit<AggregateFeature, 'windowIndex'>[] = [];
  const purchaseIndex = o.eventTypes.indexOf(o.purchase);
  for (const scope of SCOPES) {
    o.eventTypes.forEach((t, index) => {
      for (const w of o.windowsDays) features.push({ name: `${scope}_n_${t}_${w}d`, kind: 'count', scope, index, windowDays: w });
    });
  }
  for (const scope of SCOPES) {
    features.push({ name: `${scope}_days_since_event`, kind: 'days', scope, index: -1, windowDays: o.lookbackDays });
    features.push({ name: `${scope}_days_since_${o.purchase}`, kind: 'days', scope, index: purchaseIndex, windowDays: o.lookbackDays });
  }
  for (const scope of SCOPES) {
    o.numericColumns.forEach((c, index) => {
      for (const w of o.windowsDays) features.push({ name: `${scope}_sum_${c}_${w}d`, kind: 'sum', scope, index, windowDays: w });
      for (const w of o.windowsDays) features.push({ name: `${scope}_mean_${c}_${w}d`, kind: 'mean', scope, index, windowDays: w });
    });
  }
  features.push({ name: 'tenure_days', kind: 'tenure', scope: null, index: -1, windowDays: 0 });
  const withIndex = features.map((f) => ({ ...f, windowIndex: f.kind === 'days' || f.kind === 'tenure' ? -1 : o.windowsDays.indexOf(f.windowDays) }));
  return { ...o, windowsDays: [...o.windowsDays], features: withIndex, names: features.map((f) => f.name), purchaseIndex };
}

/** The aggregate features a job's shards carry. */
export function jobAggregateLayout(job: Job): AggregateLayout {
  return aggregateLayout({
    eventTypes: job.events.types,
    purchase: job.events.purchase,
    numericColumns: job.columns.numeric.map((n) => n.column),
    windowsDays: job.features.windowsDays,
    lookbackDays: job.sequence.lookbackDays,
  });
}

/** The model's (and the count baseline's) value of one raw aggregate. */
export function transformAggregate(kind: AggregateKind, raw: number, lookbackDays: number): number {
  switch (kind) {
    case 'count':
      return Math.log1p(Math.max(raw, 0));
    case 'sum':
    case 'mean':
      return raw === 0 ? 0 : Math.sign(raw) * Math.log1p(Math.abs(raw));
    case 'days':
      return Math.log1p(Number.isNaN(raw) ? lookbackDays + 1 : Math.max(raw, 0));
    case 'tenure':
      return Math.log1p(Number.isNaN(raw) ? 0 : Math.max(raw, 0));
  }
}

/**
 * The raw value back from transformAggregate()'s (a shard's `wide` value): NaN for a recency with no such event
 * ("never") and for an unknown tenure. Exact for counts; within float32 rounding for the rest.
 */
export function rawAggregate(kind: AggregateKind, value: number, lookbackDays: number): number {
  switch (kind) {
    case 'count':
      return Math.round(Math.expm1(value));
    case 'sum':
    case 'mean':
      return Math.sign(value) * Math.expm1(Math.abs(value));
    case 'days': {
      const days = Math.expm1(value);
      // "never" is written as lookback + 1 days; a real recency is at most the lookback.
      return days > lookbackDays + 0.5 ? Number.NaN : days;
    }
    case 'tenure':
      return value === 0 ? Number.NaN : Math.expm1(value);
  }
}

/** log1p(n) for the counts most rows hold: the same doubles Math.log1p gives, without the call. */
const LOG1P_COUNTS = Float64Array.from({ length: 4096 }, (_, n) => Math.log1p(n));

/**
 * transformAggregate() of a row's raw values for every product (`raw` and `out` are products × features,
 * product-major). Features over all events (`all_…` and tenure) are the same for every product: they are
 * transformed once and copied. Byte for byte what transformAggregate() gives feature by feature.
 */
export class AggregateTransform {
  private readonly kinds: AggregateKind[];
  /** Features that depend on the product (in-category): computed per product; the others copied from product 0. */
  private readonly perProduct: Int32Array;

  constructor(readonly layout: AggregateLayout, readonly products: number) {
    this.kinds = layout.features.map((f) => f.kind);
    this.perProduct = Int32Array.from(layout.features.flatMap((f, j) => (f.scope === 'cat' ? [j] : [])));
  }

  apply(raw: Float64Array, out: Float32Array, at: number): void {
    const width = this.kinds.length;
    const lookbackDays = this.layout.lookbackDays;
    for (let j = 0; j < width; j++) out[at + j] = transformOne(this.kinds[j]!, raw[j]!, lookbackDays);
    const perProduct = this.perProduct;
    for (let p = 1; p < this.products; p++) {
      const base = at + p * width;
      out.copyWithin(base, at, at + width);
      for (let i = 0; i < perProduct.length; i++) {
        const j = perProduct[i]!;
        out[base + j] = transformOne(this.kinds[j]!, raw[p * width + j]!, lookbackDays);
      }
    }
  }
}

function transformOne(kind: AggregateKind, raw: number, lookbackDays: number): number {
  return kind === 'count' && raw < LOG1P_COUNTS.length ? (raw > 0 ? LOG1P_COUNTS[raw]! : 0) : transformAggregate(kind, raw, lookbackDays);
}

const PLAN_STRIDE = 3;
const CODE_COUNT = 0;
const CODE_SUM = 1;
const CODE_MEAN = 2;
const CODE_DAYS_EVENT = 3;
const CODE_DAYS_PURCHASE = 4;
const CODE_TENURE = 5;

function planOf(layout: AggregateLayout): Int32Array {
  const windows = layout.windowsDays.length;
  const plan = new Int32Array(layout.features.length * PLAN_STRIDE);
  layout.features.forEach((f, j) => {
    const code =
      f.kind === 'count' ? CODE_COUNT : f.kind === 'sum' ? CODE_SUM : f.kind === 'mean' ? CODE_MEAN : f.kind === 'tenure' ? CODE_TENURE : f.index < 0 ? CODE_DAYS_EVENT : CODE_DAYS_PURCHASE;
    plan[j * PLAN_STRIDE] = code;
    plan[j * PLAN_STRIDE + 1] = f.scope === 'cat' ? 1 : 0;
    plan[j * PLAN_STRIDE + 2] = f.kind === 'count' || f.kind === 'sum' || f.kind === 'mean' ? f.index * windows + f.windowIndex : 0;
  });
  return plan;
}

/**
 * Per customer accumulator of one set's aggregates for every product (no allocation per event).
 * `add` takes the feature events in time order; `write` fills raw values for one product.
 */
export class AggregateAccumulator {
  /** [scope(all=0) + products] × types × windows. */
  private readonly counts: Int32Array;
  private readonly sums: Float64Array;
  /** Per scope slot: last event and last purchase time (NaN = none). */
  private readonly lastEvent: Float64Array;
  private readonly lastPurchase: Float64Array;
  private readonly windowMs: Float64Array;
  private readonly types: number;
  private readonly numerics: number;
  private readonly windows: number;

  constructor(readonly layout: AggregateLayout, readonly products: number) {
    this.types = layout.eventTypes.length;
    this.numerics = layout.numericColumns.length;
    this.windows = layout.windowsDays.length;
    const slots = products + 1;
    this.counts = new Int32Array(slots * this.types * this.windows);
    this.sums = new Float64Array(slots * Math.max(1, this.numerics) * this.windows);
    this.lastEvent = new Float64Array(slots).fill(Number.NaN);
    this.lastPurchase = new Float64Array(slots).fill(Number.NaN);
    this.windowMs = Float64Array.from(layout.windowsDays, (w) => w * DAY_MS);
    this.plan = planOf(layout);
  }

  reset(): void {
    this.counts.fill(0);
    this.sums.fill(0);
    this.lastEvent.fill(Number.NaN);
    this.lastPurchase.fill(Number.NaN);
  }

  /**
   * One feature event. `inProduct[p]` says whether the event is in product p's category (always for `any`).
   * `numeric` holds the event's raw numeric values at `numericAt`.
   */
  add(ts: number, asOfMs: number, type: number, inProduct: Uint8Array, numeric: Float64Array, numericAt: number): void {
    const age = asOfMs - ts;
    const purchase = type === this.layout.purchaseIndex;
    for (let slot = 0; slot <= this.products; slot++) {
      if (slot > 0 && inProduct[slot - 1] === 0) continue;
      this.lastEvent[slot] = ts;
      if (purchase) this.lastPurchase[slot] = ts;
      const countBase = (slot * this.types + type) * this.windows;
      const sumBase = slot * this.numerics * this.windows;
      for (let w = 0; w < this.windows; w++) {
        if (age > this.windowMs[w]!) continue;
        this.counts[countBase + w]!++;
        for (let k = 0; k < this.numerics; k++) this.sums[sumBase + k * this.windows + w]! += numeric[numericAt + k]!;
      }
    }
  }

  /** Raw values of product p's features, in layout order, into out[at …]. */
  write(p: number, asOfMs: number, firstTs: number, out: Float64Array, at: number): void {
    const plan = this.plan;
    const n = plan.length / PLAN_STRIDE;
    const productSlot = p + 1;
    const countsPerSlot = this.types * this.windows;
    const sumsPerSlot = this.numerics * this.windows;
    for (let j = 0; j < n; j++) {
      const code = plan[j * PLAN_STRIDE]!;
      const slot = plan[j * PLAN_STRIDE + 1] === 0 ? 0 : productSlot;
      const offset = plan[j * PLAN_STRIDE + 2]!;
      let v: number;
      if (code === CODE_COUNT) v = this.counts[slot * countsPerSlot + offset]!;
      else if (code === CODE_SUM) v = this.sums[slot * sumsPerSlot + offset]!;
      else if (code === CODE_MEAN) {
        // offset: the sum's; the window is offset mod windows
        const w = offset % this.windows;
        let events = 0;
        for (let t = 0; t < this.types; t++) events += this.counts[slot * countsPerSlot + t * this.windows + w]!;
        v = events === 0 ? 0 : this.sums[slot * sumsPerSlot + offset]! / events;
      } else if (code === CODE_DAYS_EVENT || code === CODE_DAYS_PURCHASE) {
        const t = code === CODE_DAYS_EVENT ? this.lastEvent[slot]! : this.lastPurchase[slot]!;
        v = Number.isNaN(t) ? Number.NaN : (asOfMs - t) / DAY_MS;
      } else v = Number.isNaN(firstTs) ? Number.NaN : (asOfMs - firstTs) / DAY_MS;
      out[at + j] = v;
    }
  }

  /** Per feature, in layout order: kind code, scope (0 = all, 1 = the product), offset within its slot's counts or sums. */
  private readonly plan: Int32Array;
}
