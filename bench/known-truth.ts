/**
 * Clickstream events with KNOWN purchase probabilities: the measuring stick for nextbuy's models.
 *
 * Output, in one folder: `events.csv` (Taobao-like: user_id,item_id,category_id,behavior_type,timestamp,price;
 * behavior_type pv|cart|fav|buy; timestamp epoch seconds UTC), `truth.csv` (customer_id,product,probability,label
 * for the window [D, D + H)), `job.yaml` (the job that reads the events, products = the target categories) and
 * `known-truth.json` (what was generated, with the Bayes-optimal AUC per product).
 *
 * The process. Time is cut into blocks of H days aligned on the as-of date D (… [D − 2H, D − H), [D − H, D),
 * [D, D + H)), starting early enough that the first training set's lookback is covered (plus `warmupDays`).
 * Each customer is simulated block by block. At the start t0 of a block, for every target category k, the
 * purchase probability p = σ(logit) is computed from the customer's events in the lookback [t0 − L, t0) (L =
 * `lookbackDays`, the job's sequence.lookbackDays); one Bernoulli(p) draw decides whether the customer buys in
 * k during the block (one `buy` at a random instant of the block, preceded by a cart of the same item with
 * probability 0.6 and a view with probability 0.8). The block's browsing is then drawn day by day. So every
 * as-of date D − jH sees labels drawn from exactly the same function of its own lookback: the pipeline's
 * training set (as-of D − H) and training snapshots at D − 2H, D − 3H, … are samples of the process it is
 * scored on, and `truth.csv` holds the p used for [D, D + H). Its labels are the events' purchases in that
 * window. The Bayes-optimal AUC of a product is the AUC of p against those labels. With the defaults (H 7,
 * L 28, warmup 14) the data start at D − 49 days, so as-of dates down to D − 3H have their whole lookback.
 * Other as-of dates (not a multiple of H before D) straddle two blocks: their labels are still real
 * purchases, but no single p produced them.
 *
 * The true logit for target category k. Every term reads only the lookback [t0 − L, t0), so a model that
 * sees the whole lookback can reach it; the constants are TRUTH below, the strengths are on the logit:
 *   base[k]                                          −5.6, −5.4, −5.8, … (cycling): ~3–4 % buy per block
 *   (a) recency      + 0.8 · exp(−d / 3)             d = days since the last event in k (0 without one):
 *                                                     +0.8 the same day, +0.3 after 3 days, ~0 after 2 weeks
 *   (b) views, carts + 0.2 · ln(1 + views in k)       20 views: +0.61
 *                    + 0.2 · ln(1 + carts in k)       3 carts:  +0.28
 *   (c) repeat       + 0.4 · min(purchases in k, 3)   each earlier purchase in k, up to 3: +0.4
 *   (d) pending cart + 2.5 · [the LAST cart in k is   the strongest term (×12 the odds). A purchase after the
 *                      followed by no purchase]       cart, in k (it was bought) or in any other category (the
 *                                                     customer checked out without it), turns it off. Counts
 *                                                     cannot see it: the same counts per type and category
 *                                                     with cart→buy or buy→cart differ by 2.5. Purchases are
 *                                                     common (noise categories, below), so most customers with
 *                                                     a cart in k also bought something in the lookback, and
 *                                                     their counts leave the order open
 *   favs, and the rest of the other categories        no effect (0)
 * Measured at 20,000 customers (seed 7): ~600–850 positives per product, Bayes-optimal AUC ≈ 0.89, and a
 * logistic regression on per-category counts over 7 and 28 days with recency (bench/count-baseline.ts)
 * ≈ 0.86, i.e. 0.96–0.97 of it: the room a model that reads the order of events can win.
 *
 * The browsing. Customers differ in activity: a share of days active (uniform 0.1–0.9), events per active
 * day 1 + Poisson(m) with m lognormal (median 4, capped at 60), so most customers exceed 50 events in a 28-day
 * lookback and some have hundreds; 15 % join late and 10 % lapse (0 events in some windows). Each customer is
 * interested in some target categories (40 % chance each) and has 5 favourite noise categories; interest in a
 * target category comes in episodes (start 5 %/day, end 30 %/day, 8× the weight), which is what makes recency
 * and counts informative. In-category events are pv 86 %, cart 9 %, fav 5 %; events in noise categories are
 * `buy` 4 % of the time (noise purchases: they never enter a target label, but they close pending carts).
 * Items are skewed within their category and carry a fixed price (no signal). Timestamps are strictly
 * increasing per customer, so no event is a duplicate the pipeline would drop.
 *
 * Speed and determinism: one PRNG per customer (core/random.ts's mulberry32 seeded from (seed, customer)),
 * typed arrays only (no object per event), CSV written through one 4 MiB byte buffer. Same options → same bytes.
 *
 * CLI: node --import tsx bench/known-truth.ts --customers 20000 --out /tmp/kt [--seed 7] [--as-of 2026-11-01]
 *      [--horizon 7] [--lookback 28] [--targets 3]
 */
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { mulberry32 } from '../core/random.js';
import { computeMetrics } from '../coordinator/evaluate/index.js';

export interface KnownTruthOptions {
  customers: number;
  /** Output folder (created; the files named above are replaced). */
  out: string;
  /** @default 7 */
  seed?: number;
  /** The as-of date D, YYYY-MM-DD (UTC). @default '2026-11-01' */
  asOf?: string;
  /** H: the label window [D, D + H) and the block length. @default 7 */
  horizonDays?: number;
  /** L: the window every signal reads, and the job's sequence.lookbackDays. @default 28 */
  lookbackDays?: number;
  /** Days simulated before the first training set's lookback (rounded up to whole blocks). @default 14 */
  warmupDays?: number;
  /** Target categories (the products), ids 1001, 1002, … @default 3 */
  targets?: number;
  /** Noise categories, ids 2001, 2002, … @default 40 */
  noiseCategories?: number;
  /** The job's sequence.maxLength. @default 50 */
  maxLength?: number;
  /** The job's account. @default 'kt' */
  account?: string;
}

/** The constants of the true logit (documented in the header). */
export const TRUTH = {
  base: [-5.6, -5.4, -5.8],
  recency: 0.8,
  recencyDays: 3,
  views: 0.2,
  carts: 0.2,
  repeat: 0.4,
  repeatCap: 3,
  abandonedCart: 2.5,
} as const;

export const EVENT_TYPES = ['pv', 'cart', 'fav', 'buy'] as const;
export const PV = 0;
export const CART = 1;
export const FAV = 2;
export const BUY = 3;
const DAY_S = 86_400;
/** Target category k is FIRST_TARGET + k (its product name is that number); noise categories start at FIRST_NOISE. */
export const FIRST_TARGET = 1001;
export const FIRST_NOISE = 2001;
const ITEMS_PER_CATEGORY = 300;

/**
 * Per target category, what the lookback holds as of t0: `STATS` slots each (see S_*), then OVERALL slots for
 * all categories together. Times are epoch seconds, NaN when there is no such event.
 */
export const S_VIEWS = 0;
export const S_CARTS = 1;
export const S_FAVS = 2;
export const S_BUYS = 3;
export const S_VIEWS7 = 4;
export const S_CARTS7 = 5;
export const S_FAVS7 = 6;
export const S_BUYS7 = 7;
export const S_LAST = 8;
export const S_LAST_CART = 9;
export const S_LAST_BUY = 10;
export const STATS = 11;
/** Overall slots after the targets': counts per type (pv, cart, fav, buy), the last event's time, the last purchase's (any category). */
export const OVERALL = 6;
export const O_LAST = 4;
export const O_LAST_BUY = 5;

/** A customer's events, oldest first (ts strictly increasing). */
export interface EventBuffer {
  length: number;
  ts: Float64Array;
  category: Int32Array;
  type: Uint8Array;
  item: Int32Array;
}

export function newEventBuffer(capacity = 4096): EventBuffer {
  return { length: 0, ts: new Float64Array(capacity), category: new Int32Array(capacity), type: new Uint8Array(capacity), item: new Int32Array(capacity) };
}

export function pushEvent(b: EventBuffer, ts: number, category: number, type: number, item: number): void {
  if (b.length === b.ts.length) {
    const grow = <T extends Float64Array | Int32Array | Uint8Array>(a: T): T => {
      const g = new (a.constructor as new (n: number) => T)(a.length * 2);
      g.set(a);
      return g;
    };
    b.ts = grow(b.ts);
    b.category = grow(b.category);
    b.type = grow(b.type);
    b.item = grow(b.item);
  }
  const i = b.length++;
  b.ts[i] = ts;
  b.category[i] = category;
  b.type[i] = type;
  b.item[i] = item;
}

/**
 * Fills `out` (targets × STATS + OVERALL) with the lookback [t0 − lookbackDays, t0) of `b`, reading events
 * from index `from` (any index at or before the window's first event) up to the first at or after t0.
 */
export function summariseLookback(b: EventBuffer, from: number, t0: number, lookbackDays: number, targets: number, out: Float64Array): void {
  out.fill(0);
  for (let k = 0; k < targets; k++) {
    out[k * STATS + S_LAST] = Number.NaN;
    out[k * STATS + S_LAST_CART] = Number.NaN;
    out[k * STATS + S_LAST_BUY] = Number.NaN;
  }
  const o = targets * STATS;
  out[o + O_LAST] = Number.NaN;
  out[o + O_LAST_BUY] = Number.NaN;
  const lo = t0 - lookbackDays * DAY_S;
  const lo7 = t0 - 7 * DAY_S;
  for (let i = from; i < b.length; i++) {
    const ts = b.ts[i]!;
    if (ts >= t0) break;
    if (ts < lo) continue;
    const type = b.type[i]!;
    out[o + type]!++;
    out[o + O_LAST] = ts;
    if (type === BUY) out[o + O_LAST_BUY] = ts;
    const k = b.category[i]! - FIRST_TARGET;
    if (k < 0 || k >= targets) continue;
    const s = k * STATS;
    out[s + type]!++;
    if (ts >= lo7) out[s + 4 + type]!++;
    out[s + S_LAST] = ts;
    if (type === CART) out[s + S_LAST_CART] = ts;
    else if (type === BUY) out[s + S_LAST_BUY] = ts;
  }
}

/** The true logit of buying in target category k within the block starting at t0, from summariseLookback's stats. */
export function trueLogit(stats: Float64Array, k: number, t0: number, targets: number): number {
  const s = k * STATS;
  let x: number = TRUTH.base[k % TRUTH.base.length]!;
  const last = stats[s + S_LAST]!;
  if (!Number.isNaN(last)) x += TRUTH.recency * Math.exp(-(t0 - last) / DAY_S / TRUTH.recencyDays);
  x += TRUTH.views * Math.log1p(stats[s + S_VIEWS]!);
  x += TRUTH.carts * Math.log1p(stats[s + S_CARTS]!);
  x += TRUTH.repeat * Math.min(stats[s + S_BUYS]!, TRUTH.repeatCap);
  if (isAbandonedCart(stats, k, targets)) x += TRUTH.abandonedCart;
  return x;
}

/**
 * A pending cart in k: the last cart in k within the lookback is followed by no purchase, neither in k (it was
 * bought) nor in another category (the customer checked out without it).
 */
export function isAbandonedCart(stats: ArrayLike<number>, k: number, targets: number): boolean {
  const cart = stats[k * STATS + S_LAST_CART]!;
  const buy = stats[targets * STATS + O_LAST_BUY]!;
  return !Number.isNaN(cart) && !(buy > cart);
}

export function trueProbability(stats: Float64Array, k: number, t0: number, targets: number): number {
  return 1 / (1 + Math.exp(-trueLogit(stats, k, t0, targets)));
}

/** One snapshot as of a block start: who is known, their lookback stats, true probabilities and labels. */
export interface Snapshot {
  asOf: string;
  asOfSec: number;
  /** Customers with any event before the as-of instant (the ones the pipeline scores), ascending ids. */
  customerIds: Int32Array;
  /** [customer row × (targets × STATS + OVERALL)] */
  stats: Float32Array;
  /** [customer row × targets] */
  probability: Float64Array;
  labels: Int8Array;
}

export interface KnownTruth {
  dir: string;
  eventsFile: string;
  truthFile: string;
  jobFile: string;
  account: string;
  /** D, H, L and the first simulated day. */
  asOf: string;
  horizonDays: number;
  lookbackDays: number;
  start: string;
  products: string[];
  events: number;
  customers: number;
  /** Share of customers known as of D with more than 50 events in [D − L, D). */
  shareOver50: number;
  maxEventsInLookback: number;
  /** As of D (the truth file) and as of D − H (the pipeline's training set). */
  score: Snapshot;
  train: Snapshot;
  perProduct: { product: string; positives: number; customers: number; meanProbability: number; bayesAuc: number | null }[];
}

/** A 32-bit integer mix of (seed, customer): the per-customer PRNG seed. */
function mix(seed: number, c: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(c + 0x27d4eb2f, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

function poisson(mean: number, rnd: () => number): number {
  if (mean <= 0) return 0;
  if (mean > 30) return Math.max(0, Math.round(mean + Math.sqrt(mean) * normal(rnd)));
  const limit = Math.exp(-mean);
  let k = 0;
  let p = rnd();
  while (p > limit) {
    k++;
    p *= rnd();
  }
  return k;
}

function normal(rnd: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
}

/** A skewed item of category c, and its fixed price in cents. */
function itemOf(c: number, rnd: () => number): number {
  return c * 1000 + Math.floor(ITEMS_PER_CATEGORY * rnd() * rnd());
}
function priceCents(item: number): number {
  return 100 + (Math.imul(item, 2654435761) >>> 0) % 49_900;
}

/** Writes CSV bytes through one big buffer. */
class CsvSink {
  private readonly buf = Buffer.allocUnsafe(1 << 22);
  private pos = 0;
  constructor(private readonly fd: number) {}
  private room(n: number): void {
    if (this.pos + n > this.buf.length) this.flush();
  }
  text(s: string): void {
    this.room(s.length * 3);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }
  byte(c: number): void {
    this.room(1);
    this.buf[this.pos++] = c;
  }
  /** A non-negative integer. */
  int(n: number): void {
    this.room(20);
    if (n === 0) {
      this.buf[this.pos++] = 48;
      return;
    }
    let digits = 0;
    for (let v = n; v > 0; v = Math.floor(v / 10)) digits++;
    let at = this.pos + digits;
    this.pos = at;
    for (let v = n; v > 0; v = Math.floor(v / 10)) this.buf[--at] = 48 + (v % 10);
  }
  flush(): void {
    if (this.pos > 0) writeSync(this.fd, this.buf, 0, this.pos);
    this.pos = 0;
  }
}

const TYPE_BYTES = EVENT_TYPES.map((t) => Buffer.from(t));

function parseDaySec(day: string): number {
  const ms = Date.parse(`${day}T00:00:00Z`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day) || Number.isNaN(ms)) throw new Error(`as-of date must be YYYY-MM-DD, got "${day}"`);
  return ms / 1000;
}
const formatDaySec = (s: number): string => new Date(s * 1000).toISOString().slice(0, 10);

/** Customer traits drawn once. */
interface Traits {
  activeShare: number;
  perDay: number;
  firstDay: number;
  endDay: number;
  interest: Float64Array;
  noise: Int32Array;
}

const NOISE_FAVOURITES = 5;
const NOISE_WEIGHT = 0.4;
const EPISODE_START = 0.05;
const EPISODE_END = 0.3;
const EPISODE_BOOST = 8;
const NOISE_BUY = 0.04;

function drawTraits(rnd: () => number, days: number, targets: number, noiseCategories: number): Traits {
  const interest = new Float64Array(targets);
  for (let k = 0; k < targets; k++) interest[k] = rnd() < 0.4 ? 0.3 + 1.5 * rnd() : 0.03;
  const noise = new Int32Array(NOISE_FAVOURITES);
  for (let j = 0; j < NOISE_FAVOURITES; j++) noise[j] = FIRST_NOISE + Math.floor(noiseCategories * rnd() * rnd());
  const firstDay = rnd() < 0.15 ? Math.floor(rnd() * days) : 0;
  const endDay = rnd() < 0.1 ? firstDay + Math.floor(rnd() * (days - firstDay)) : days;
  return { activeShare: 0.1 + 0.8 * rnd(), perDay: Math.min(60, Math.exp(Math.log(4) + 0.9 * normal(rnd))), firstDay, endDay, interest, noise };
}

/** Generates the files; returns what was generated (truth arrays included) for benchmarks and tests. */
export function generateKnownTruth(o: KnownTruthOptions): KnownTruth {
  const seed = o.seed ?? 7;
  const H = o.horizonDays ?? 7;
  const L = o.lookbackDays ?? 28;
  const targets = o.targets ?? 3;
  const noiseCategories = o.noiseCategories ?? 40;
  const account = o.account ?? 'kt';
  const asOf = o.asOf ?? '2026-11-01';
  if (!(Number.isInteger(o.customers) && o.customers >= 1)) throw new Error(`customers must be a whole number ≥ 1, got ${o.customers}`);
  if (!(Number.isInteger(H) && H >= 1 && Number.isInteger(L) && L >= 7)) throw new Error(`horizonDays must be ≥ 1 and lookbackDays ≥ 7 (whole days), got ${H} and ${L}`);
  const D = parseDaySec(asOf);
  const blocksBefore = Math.ceil((H + L + (o.warmupDays ?? 14)) / H);
  const S = D - blocksBefore * H * DAY_S;
  const blocks = blocksBefore + 1;
  const days = blocks * H;
  const width = targets * STATS + OVERALL;

  mkdirSync(o.out, { recursive: true });
  const eventsFile = path.join(o.out, 'events.csv');
  const truthFile = path.join(o.out, 'truth.csv');
  const jobFile = path.join(o.out, 'job.yaml');
  const fd = openSync(eventsFile, 'w');
  const csv = new CsvSink(fd);
  csv.text('user_id,item_id,category_id,behavior_type,timestamp,price\n');

  const N = o.customers;
  const snapshotArrays = () => ({ known: new Uint8Array(N), stats: new Float32Array(N * width), probability: new Float64Array(N * targets), labels: new Int8Array(N * targets) });
  const snaps = { train: snapshotArrays(), score: snapshotArrays() };
  const buf = newEventBuffer();
  const block = newEventBuffer(1024);
  const stats = new Float64Array(width);
  const episode = new Uint8Array(targets);
  const weights = new Float64Array(targets + NOISE_FAVOURITES);
  let order = new Uint32Array(1024);
  let events = 0;
  let over50 = 0;
  let maxInLookback = 0;

  for (let c = 0; c < N; c++) {
    const rnd = mulberry32(mix(seed, c + 1));
    const t = drawTraits(rnd, days, targets, noiseCategories);
    buf.length = 0;
    episode.fill(0);
    let windowStart = 0;
    for (let b = 0; b < blocks; b++) {
      const t0 = S + b * H * DAY_S;
      while (windowStart < buf.length && buf.ts[windowStart]! < t0 - L * DAY_S) windowStart++;
      summariseLookback(buf, windowStart, t0, L, targets, stats);
      const snap = t0 === D ? snaps.score : t0 === D - H * DAY_S ? snaps.train : null;
      block.length = 0;
      // Purchases in the block, one draw per target category from the true probability as of t0.
      for (let k = 0; k < targets; k++) {
        const p = trueProbability(stats, k, t0, targets);
        const bought = rnd() < p;
        if (snap) {
          snap.probability[c * targets + k] = p;
          snap.labels[c * targets + k] = bought ? 1 : 0;
        }
        if (!bought) continue;
        const cat = FIRST_TARGET + k;
        const item = itemOf(cat, rnd);
        const at = t0 + 3600 + Math.floor(rnd() * (H * DAY_S - 7200));
        let before = at;
        if (rnd() < 0.6) pushEvent(block, (before -= 120 + Math.floor(rnd() * 1680)), cat, CART, item);
        if (rnd() < 0.8) pushEvent(block, (before -= 60 + Math.floor(rnd() * 600)), cat, PV, item);
        pushEvent(block, at, cat, BUY, item);
      }
      if (snap) {
        snap.known[c] = buf.length > 0 && buf.ts[0]! < t0 ? 1 : 0;
        for (let j = 0; j < width; j++) snap.stats[c * width + j] = stats[j]!;
        if (t0 === D && snap.known[c]) {
          let n = 0;
          for (let j = 0; j < 4; j++) n += stats[targets * STATS + j]!;
          if (n > 50) over50++;
          if (n > maxInLookback) maxInLookback = n;
        }
      }
      // Browsing, day by day.
      for (let d = 0; d < H; d++) {
        const day = b * H + d;
        for (let k = 0; k < targets; k++) episode[k] = episode[k] ? (rnd() < EPISODE_END ? 0 : 1) : rnd() < EPISODE_START ? 1 : 0;
        if (day < t.firstDay || day >= t.endDay || rnd() >= t.activeShare) continue;
        let total = 0;
        for (let k = 0; k < targets; k++) total += weights[k] = t.interest[k]! * (episode[k] ? EPISODE_BOOST : 1);
        for (let j = 0; j < NOISE_FAVOURITES; j++) total += weights[targets + j] = NOISE_WEIGHT;
        const n = 1 + poisson(t.perDay, rnd);
        const dayStart = t0 + d * DAY_S;
        for (let e = 0; e < n; e++) {
          let u = rnd() * total;
          let j = 0;
          while (j < weights.length - 1 && u >= weights[j]!) u -= weights[j++]!;
          const target = j < targets;
          const cat = target ? FIRST_TARGET + j : t.noise[j - targets]!;
          const v = rnd();
          const type = v < 0.86 ? PV : v < 0.95 ? CART : FAV;
          const finalType = !target && rnd() < NOISE_BUY ? BUY : type;
          pushEvent(block, dayStart + Math.floor(rnd() * (DAY_S - 600)), cat, finalType, itemOf(cat, rnd));
        }
      }
      // Append the block in time order, times made strictly increasing (no duplicates for the pipeline to drop).
      if (order.length < block.length) order = new Uint32Array(block.length * 2);
      const idx = order.subarray(0, block.length);
      for (let i = 0; i < idx.length; i++) idx[i] = i;
      idx.sort((x, y) => block.ts[x]! - block.ts[y]! || x - y);
      let prev = buf.length > 0 ? buf.ts[buf.length - 1]! : -Infinity;
      for (const i of idx) {
        const ts = Math.max(block.ts[i]!, prev + 1);
        prev = ts;
        pushEvent(buf, ts, block.category[i]!, block.type[i]!, block.item[i]!);
      }
    }
    for (let i = 0; i < buf.length; i++) {
      const item = buf.item[i]!;
      csv.int(c + 1);
      csv.byte(44);
      csv.int(item);
      csv.byte(44);
      csv.int(buf.category[i]!);
      csv.byte(44);
      csv.text(EVENT_TYPES[buf.type[i]!]!);
      csv.byte(44);
      csv.int(buf.ts[i]!);
      csv.byte(44);
      const cents = priceCents(item);
      csv.int(Math.floor(cents / 100));
      csv.byte(46);
      csv.int(Math.floor((cents % 100) / 10));
      csv.int(cents % 10);
      csv.byte(10);
    }
    events += buf.length;
  }
  csv.flush();
  closeSync(fd);

  const products = Array.from({ length: targets }, (_, k) => String(FIRST_TARGET + k));
  const toSnapshot = (s: typeof snaps.score, asOfSec: number): Snapshot => {
    const rows: number[] = [];
    for (let c = 0; c < N; c++) if (s.known[c]) rows.push(c);
    const pick = <T extends Float32Array | Float64Array | Int8Array>(a: T, w: number): T => {
      const out = new (a.constructor as new (n: number) => T)(rows.length * w);
      rows.forEach((c, r) => out.set(a.subarray(c * w, (c + 1) * w), r * w));
      return out;
    };
    return {
      asOf: formatDaySec(asOfSec),
      asOfSec,
      customerIds: Int32Array.from(rows, (c) => c + 1),
      stats: pick(s.stats, width),
      probability: pick(s.probability, targets),
      labels: pick(s.labels, targets),
    };
  };
  const score = toSnapshot(snaps.score, D);
  const train = toSnapshot(snaps.train, D - H * DAY_S);

  const lines: string[] = ['customer_id,product,probability,label'];
  for (let r = 0; r < score.customerIds.length; r++) {
    for (let k = 0; k < targets; k++) lines.push(`${score.customerIds[r]},${products[k]},${score.probability[r * targets + k]!.toPrecision(6)},${score.labels[r * targets + k]}`);
  }
  writeFileSync(truthFile, `${lines.join('\n')}\n`);

  const perProduct = products.map((product, k) => {
    const n = score.customerIds.length;
    const labels = Int8Array.from({ length: n }, (_, r) => score.labels[r * targets + k]!);
    const p = Float64Array.from({ length: n }, (_, r) => score.probability[r * targets + k]!);
    let positives = 0;
    let sum = 0;
    for (let r = 0; r < n; r++) {
      positives += labels[r]!;
      sum += p[r]!;
    }
    return { product, positives, customers: n, meanProbability: n > 0 ? sum / n : 0, bayesAuc: n > 0 ? computeMetrics(labels, p).auc : null };
  });

  writeFileSync(jobFile, jobYaml({ account, start: formatDaySec(S), end: formatDaySec(D + H * DAY_S), H, L, maxLength: o.maxLength ?? 50, products, seed }));
  const result: KnownTruth = {
    dir: o.out,
    eventsFile,
    truthFile,
    jobFile,
    account,
    asOf,
    horizonDays: H,
    lookbackDays: L,
    start: formatDaySec(S),
    products,
    events,
    customers: score.customerIds.length,
    shareOver50: score.customerIds.length > 0 ? over50 / score.customerIds.length : 0,
    maxEventsInLookback: maxInLookback,
    score,
    train,
    perProduct,
  };
  const { score: _s, train: _t, ...meta } = result;
  writeFileSync(path.join(o.out, 'known-truth.json'), `${JSON.stringify({ ...meta, seed, truth: TRUTH }, null, 2)}\n`);
  return result;
}

function jobYaml(o: { account: string; start: string; end: string; H: number; L: number; maxLength: number; products: string[]; seed: number }): string {
  return `# Generated by bench/known-truth.ts: clickstream events with known purchase probabilities (truth.csv).
account: ${o.account}
input:
  path: events.csv
  timeFormat: epoch_seconds
columns:
  customer: user_id
  time: timestamp
  eventType: behavior_type
  item: item_id
  category: category_id
  numeric:
    - { column: price, min: 0 }
events:
  types: [pv, cart, fav, buy]
  purchase: buy
validation:
  validFrom: ${o.start}
  validTo: ${o.end}
  maxRejectedShare: 0.01
label:
  horizonDays: ${o.H}
sequence:
  lookbackDays: ${o.L}
  maxLength: ${o.maxLength}
products:
  overall: false
  categories: [${o.products.map((p) => `'${p}'`).join(', ')}]
model:
  seed: ${o.seed}
output:
  dir: out
`;
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const out = flag(args, 'out');
  const customers = Number(flag(args, 'customers') ?? '20000');
  if (!out || !Number.isInteger(customers) || customers < 1) {
    console.error('usage: node --import tsx bench/known-truth.ts --customers N --out DIR [--seed 7] [--as-of YYYY-MM-DD] [--horizon 7] [--lookback 28] [--targets 3]');
    process.exit(2);
  }
  const t0 = performance.now();
  const r = generateKnownTruth({
    customers,
    out,
    seed: Number(flag(args, 'seed') ?? '7'),
    asOf: flag(args, 'as-of'),
    horizonDays: flag(args, 'horizon') ? Number(flag(args, 'horizon')) : undefined,
    lookbackDays: flag(args, 'lookback') ? Number(flag(args, 'lookback')) : undefined,
    targets: flag(args, 'targets') ? Number(flag(args, 'targets')) : undefined,
  });
  const s = (performance.now() - t0) / 1000;
  console.log(`${r.events.toLocaleString('en-US')} events, ${r.customers.toLocaleString('en-US')} customers known as of ${r.asOf} in ${s.toFixed(1)} s → ${r.dir}`);
  console.log(`${(100 * r.shareOver50).toFixed(0)} % have more than 50 events in the ${r.lookbackDays}-day lookback (max ${r.maxEventsInLookback})`);
  for (const p of r.perProduct) console.log(`product ${p.product}: ${p.positives} positives, mean p ${p.meanProbability.toFixed(4)}, Bayes-optimal AUC ${p.bayesAuc?.toFixed(3) ?? '–'}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
