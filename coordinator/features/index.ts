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

// The transforms of transformAggregate(), by kind: the sequence kernel calls them by a feature's code, not its name.
const logCount = (n: number) => Math.log1p(Math.max(n, 0));
const signedLog = (x: number) => (x === 0 ? 0 : Math.sign(x) * Math.log1p(Math.abs(x)));
/** "Never" (NaN) reads as the lookback + 1 days. */
const logDays = (days: number, lookbackDays: number) => Math.log1p(Number.isNaN(days) ? lookbackDays + 1 : Math.max(days, 0));

/** The model's (and the count baseline's) value of one raw aggregate. */
export function transformAggregate(kind: AggregateKind, raw: number, lookbackDays: number): number {
  switch (kind) {
    case 'count':
      return logCount(raw);
    case 'sum':
    case 'mean':
      return signedLog(raw);
    case 'days':
      return logDays(raw, lookbackDays);
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

const CODE_COUNT = 0;
const CODE_SUM = 1;
const CODE_MEAN = 2;
const CODE_DAYS_EVENT = 3;
const CODE_DAYS_PURCHASE = 4;

/**
 * Per customer accumulator of one set's aggregates (no allocation per event). Events are counted in slot 0
 * (every event) and in the slot of the product category they belong to, if any; a product's in-category
 * features read its slot (`any` reads slot 0). `add` takes the feature events in time order;
 * `writeTransformed` writes transformAggregate() of every product's features.
 *
 * A scope's features (`cat_…` or `all_…`) are the same list read from different slots: the all-events ones
 * read slot 0, so do `any`'s in-category ones. writeTransformed computes that list once per slot, then
 * places it in each product's row (the hot loop of the sequence pass: one row per customer and set).
 */
export class AggregateAccumulator {
  /** slots × types × windows. */
  private readonly counts: Int32Array;
  private readonly sums: Float64Array;
  /** Per slot: last event and last purchase time (NaN = none). */
  private readonly lastEvent: Float64Array;
  private readonly lastPurchase: Float64Array;
  private readonly windowMs: Float64Array;
  private readonly types: number;
  private readonly numerics: number;
  private readonly windows: number;
  private readonly purchaseIndex: number;
  private readonly lookbackDays: number;
  /** Per scope feature (the in-category ones, in layout order): kind code and offset within its slot's counts or sums. */
  private readonly codes: Int32Array;
  private readonly offsets: Int32Array;
  /** Per scope feature: its place in a product's row as an in-category feature and as an all-events one. */
  private readonly categoryAt: Int32Array;
  private readonly allAt: Int32Array;
  /** tenure_days's place in a product's row. */
  private readonly tenureAt: number;
  private readonly width: number;
  /** The transformed scope features of a slot without events. */
  private readonly empty: Float64Array;
  /** [slot × scope features] transformed values of the row being written. */
  private readonly values: Float64Array;
  /** Events per window of the slot being transformed (the denominators of the means). */
  private readonly windowEvents: Float64Array;

  /** `slotOf[p]`: product p's slot (0 for `any`, else 1 … slots − 1). */
  constructor(readonly layout: AggregateLayout, private readonly slotOf: Int32Array, private readonly slots: number) {
    this.types = layout.eventTypes.length;
    this.numerics = layout.numericColumns.length;
    this.windows = layout.windowsDays.length;
    this.purchaseIndex = layout.purchaseIndex;
    this.lookbackDays = layout.lookbackDays;
    this.counts = new Int32Array(slots * this.types * this.windows);
    this.sums = new Float64Array(slots * Math.max(1, this.numerics) * this.windows);
    this.lastEvent = new Float64Array(slots).fill(Number.NaN);
    this.lastPurchase = new Float64Array(slots).fill(Number.NaN);
    this.windowMs = Float64Array.from(layout.windowsDays, (w) => w * DAY_MS);
    const f = layout.features;
    const same = (a: AggregateFeature, b: AggregateFeature) => a.kind === b.kind && a.index === b.index && a.windowDays === b.windowDays;
    const category = f.flatMap((x, j) => (x.scope === 'cat' ? [j] : []));
    const all = category.map((j) => f.findIndex((x) => x.scope === 'all' && same(x, f[j]!)));
    if (all.includes(-1) || f.filter((x) => x.scope === 'all').length !== category.length) throw new Error('aggregate layout: the cat_ and all_ features must match one to one');
    this.categoryAt = Int32Array.from(category);
    this.allAt = Int32Array.from(all);
    this.tenureAt = f.findIndex((x) => x.kind === 'tenure');
    this.width = f.length;
    const scope = category.map((j) => f[j]!);
    this.codes = Int32Array.from(scope, (x) =>
      x.kind === 'count' ? CODE_COUNT : x.kind === 'sum' ? CODE_SUM : x.kind === 'mean' ? CODE_MEAN : x.index < 0 ? CODE_DAYS_EVENT : CODE_DAYS_PURCHASE,
    );
    this.offsets = Int32Array.from(scope, (x) => (x.kind === 'days' ? 0 : x.index * this.windows + x.windowIndex));
    this.empty = Float64Array.from(scope, (x) => transformAggregate(x.kind, x.kind === 'days' ? Number.NaN : 0, layout.lookbackDays));
    this.values = new Float64Array(slots * scope.length);
    this.windowEvents = new Float64Array(this.windows);
  }

  reset(): void {
    this.counts.fill(0);
    this.sums.fill(0);
    this.lastEvent.fill(Number.NaN);
    this.lastPurchase.fill(Number.NaN);
  }

  /** One feature event; `slot`: its product category's slot, or 0 when it is in none. `numeric` holds its raw values at `numericAt`. */
  add(ts: number, asOfMs: number, type: number, slot: number, numeric: Float64Array, numericAt: number): void {
    this.addTo(0, ts, asOfMs, type, numeric, numericAt);
    if (slot > 0) this.addTo(slot, ts, asOfMs, type, numeric, numericAt);
  }

  private addTo(slot: number, ts: number, asOfMs: number, type: number, numeric: Float64Array, numericAt: number): void {
    const age = asOfMs - ts;
    this.lastEvent[slot] = ts;
    if (type === this.purchaseIndex) this.lastPurchase[slot] = ts;
    const countBase = (slot * this.types + type) * this.windows;
    const sumBase = slot * this.numerics * this.windows;
    for (let w = 0; w < this.windows; w++) {
      if (age > this.windowMs[w]!) continue;
      this.counts[countBase + w]!++;
      for (let k = 0; k < this.numerics; k++) this.sums[sumBase + k * this.windows + w]! += numeric[numericAt + k]!;
    }
  }

  /** transformAggregate() of a slot's scope features into values[at …]. */
  private transformSlot(slot: number, asOfMs: number, at: number): void {
    const { counts, sums, codes, offsets, values, windows, windowEvents } = this;
    const countBase = slot * this.types * windows;
    const sumBase = slot * this.numerics * windows;
    windowEvents.fill(0);
    for (let t = 0; t < this.types; t++) for (let w = 0; w < windows; w++) windowEvents[w]! += counts[countBase + t * windows + w]!;
    for (let i = 0; i < codes.length; i++) {
      const offset = offsets[i]!;
      let x: number;
      switch (codes[i]) {
        case CODE_COUNT: {
          const n = counts[countBase + offset]!;
          x = n < LOG1P_COUNTS.length ? LOG1P_COUNTS[n]! : logCount(n);
          break;
        }
        case CODE_SUM:
        case CODE_MEAN: {
          const events = windowEvents[offset % windows]!;
          const raw = codes[i] === CODE_SUM ? sums[sumBase + offset]! : events === 0 ? 0 : sums[sumBase + offset]! / events;
          x = signedLog(raw);
          break;
        }
        default: {
          const t = codes[i] === CODE_DAYS_EVENT ? this.lastEvent[slot]! : this.lastPurchase[slot]!;
          x = logDays((asOfMs - t) / DAY_MS, this.lookbackDays); // t NaN (no such event): "never"
        }
      }
      values[at + i] = x;
    }
  }

  /** transformAggregate() of every product's features, in layout order, product-major, into out[at …]. */
  writeTransformed(asOfMs: number, firstTs: number, out: Float32Array, at: number): void {
    const { values, categoryAt, allAt, slotOf, width } = this;
    const n = categoryAt.length;
    for (let slot = 0; slot < this.slots; slot++) {
      if (slot > 0 && Number.isNaN(this.lastEvent[slot]!)) values.set(this.empty, slot * n);
      else this.transformSlot(slot, asOfMs, slot * n);
    }
    const tenure = transformAggregate('tenure', Number.isNaN(firstTs) ? Number.NaN : (asOfMs - firstTs) / DAY_MS, this.lookbackDays);
    for (let p = 0; p < slotOf.length; p++) {
      const row = at + p * width;
      const base = slotOf[p]! * n;
      for (let i = 0; i < n; i++) {
        out[row + allAt[i]!] = values[i]!;
        out[row + categoryAt[i]!] = values[base + i]!;
      }
      if (this.tenureAt >= 0) out[row + this.tenureAt] = tenure;
    }
  }
}
