/**
 * The known-truth generator behind bench/quality.ts: its truth file agrees with its events, each documented
 * signal moves the true probability the documented way, the order-of-events signal is invisible to counts,
 * and one seed gives the same bytes.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { aucWithCi, pairedAucDifference } from '../bench/auc-ci.js';
import { computeMetrics } from '../coordinator/evaluate/index.js';
import {
  BUY,
  CART,
  FAV,
  FIRST_NOISE,
  FIRST_TARGET,
  generateKnownTruth,
  newEventBuffer,
  O_LAST_BUY,
  OVERALL,
  PV,
  pushEvent,
  S_CARTS,
  S_LAST_CART,
  STATS,
  summariseLookback,
  trueLogit,
  TRUTH,
  type KnownTruth,
} from '../bench/known-truth.js';

const DAY = 86_400;
const TARGETS = 3;
const LOOKBACK = 28;
let dir: string;
let kt: KnownTruth;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-known-truth-'));
  kt = generateKnownTruth({ customers: 1500, out: path.join(dir, 'a'), seed: 11 });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function csvRows(text: string): string[][] {
  return text.trimEnd().split('\n').slice(1).map((l) => l.split(','));
}

/** The true logit of target k as of t0 for a history given as [days before t0, category, type]. */
function logitOf(k: number, history: [number, number, number][], t0 = 1_800_000_000): number {
  const b = newEventBuffer(16);
  const sorted = [...history].sort((x, y) => y[0] - x[0]);
  sorted.forEach(([daysAgo, category, type]) => pushEvent(b, t0 - daysAgo * DAY, category, type, category * 1000));
  const stats = new Float64Array(TARGETS * STATS + OVERALL);
  summariseLookback(b, 0, t0, LOOKBACK, TARGETS, stats);
  return trueLogit(stats, k, t0, TARGETS);
}

/** Per-category counts by event type (what a count model sees) of the same history. */
function countsOf(history: [number, number, number][]): string {
  const m = new Map<string, number>();
  for (const [, c, t] of history) m.set(`${c}/${t}`, (m.get(`${c}/${t}`) ?? 0) + 1);
  return JSON.stringify([...m].sort());
}

const T = FIRST_TARGET; // target category k = 0
const NOISE = FIRST_NOISE;

describe('the known-truth generator', () => {
  test("the truth file's labels are the events' purchases in [D, D + H), for every customer known before D", async () => {
    const D = Date.parse(`${kt.asOf}T00:00:00Z`) / 1000;
    const end = D + kt.horizonDays * DAY;
    const bought = new Set<string>();
    const known = new Set<string>();
    for (const [user, , category, type, ts] of csvRows(await readFile(kt.eventsFile, 'utf8'))) {
      const t = Number(ts);
      if (t < D) known.add(user!);
      if (type === 'buy' && t >= D && t < end) bought.add(`${user}/${category}`);
    }
    const truth = csvRows(await readFile(kt.truthFile, 'utf8'));
    expect(truth.length).toBe(known.size * kt.products.length);
    expect(new Set(truth.map((r) => r[0]))).toEqual(known);
    let positives = 0;
    for (const [customer, product, probability, label] of truth) {
      expect(label, `customer ${customer} product ${product}`).toBe(bought.has(`${customer}/${product}`) ? '1' : '0');
      expect(Number(probability)).toBeGreaterThan(0);
      expect(Number(probability)).toBeLessThan(1);
      positives += Number(label);
    }
    // Every target purchase in the window by a known customer is a truth row's positive.
    expect([...bought].filter((key) => known.has(key.split('/')[0]!) && kt.products.includes(key.split('/')[1]!)).length).toBe(positives);
    expect(positives).toBeGreaterThan(30);
  });

  test('the data look like the brief: most customers have over 50 events in the lookback, some none, the true probability ranks well', () => {
    expect(kt.shareOver50).toBeGreaterThan(0.5);
    expect(kt.maxEventsInLookback).toBeGreaterThan(300);
    for (const p of kt.perProduct) {
      expect(p.bayesAuc).toBeGreaterThan(0.8);
      expect(p.positives / p.customers).toBeGreaterThan(0.01);
      expect(p.positives / p.customers).toBeLessThan(0.1);
    }
  });

  test('(a) recency: a more recent event in the category raises the probability as documented', () => {
    const recent = logitOf(0, [[1, T, PV]]);
    const old = logitOf(0, [[20, T, PV]]);
    expect(recent).toBeGreaterThan(old);
    expect(recent - old).toBeCloseTo(TRUTH.recency * (Math.exp(-1 / 3) - Math.exp(-20 / 3)), 3);
    // An event in another target category or a noise category does not count.
    expect(logitOf(0, [[1, T + 1, PV]])).toBeCloseTo(logitOf(0, []), 10);
    expect(logitOf(0, [[1, NOISE, PV]])).toBeCloseTo(logitOf(0, []), 10);
  });

  test('(b) views and carts in the category raise the probability as documented; favs do nothing', () => {
    const views = (n: number) => logitOf(0, Array.from({ length: n }, (_, i): [number, number, number] => [10 - i * 0.1, T, PV]).concat([[0.5, T, PV]]));
    expect(views(20) - views(2)).toBeCloseTo(TRUTH.views * (Math.log(22) - Math.log(4)), 6);
    // Carts each followed by a purchase elsewhere, so none is pending: only the count term moves.
    const carts = (n: number) =>
      logitOf(0, Array.from({ length: n }, (_, i): [number, number, number][] => [[10 - i, T, CART], [9.5 - i, NOISE, BUY]]).flat().concat([[0.5, T, PV]]));
    expect(carts(3) - carts(1)).toBeCloseTo(TRUTH.carts * (Math.log(4) - Math.log(2)), 6);
    expect(logitOf(0, [[2, T, PV], [1, T, FAV], [1, T, FAV]])).toBeCloseTo(logitOf(0, [[2, T, PV], [1, T, PV]]) - TRUTH.views * (Math.log(3) - Math.log(2)), 6);
  });

  test('(c) repeat buying: each earlier purchase in the category raises the probability, up to the cap', () => {
    const buys = (n: number) => logitOf(0, [...Array.from({ length: n }, (_, i): [number, number, number] => [10 - i, T, BUY]), [0.5, T, PV]]);
    expect(buys(1) - buys(0)).toBeCloseTo(TRUTH.repeat, 6);
    expect(buys(3) - buys(1)).toBeCloseTo(2 * TRUTH.repeat, 6);
    expect(buys(5)).toBeCloseTo(buys(TRUTH.repeatCap), 6);
  });

  test('(d) a pending cart (the last cart in the category followed by no purchase) raises the probability strongly', () => {
    const pending = logitOf(0, [[3, T, PV], [2, T, CART], [1, T, PV]]);
    const boughtAfter = logitOf(0, [[3, T, PV], [2, T, CART], [1, T, BUY]]);
    const checkedOutElsewhere = logitOf(0, [[3, T, PV], [2, T, CART], [1.5, NOISE, BUY], [1, T, PV]]);
    const noCart = logitOf(0, [[3, T, PV], [1, T, PV]]);
    expect(pending - noCart).toBeCloseTo(TRUTH.abandonedCart + TRUTH.carts * Math.log(2), 6);
    expect(pending).toBeGreaterThan(boughtAfter);
    expect(pending - checkedOutElsewhere).toBeCloseTo(TRUTH.abandonedCart, 6);
    // A cart outside the lookback is not pending.
    expect(logitOf(0, [[40, T, CART], [1, T, PV]])).toBeCloseTo(logitOf(0, [[1, T, PV]]), 10);
  });

  test('the order-of-events signal is invisible to counts: the same counts per category and type, different probabilities', () => {
    // Same counts (1 pv, 1 cart, 1 buy in the category), same last event, same last cart: only the buy's place differs.
    const cartThenBuy: [number, number, number][] = [[5, T, PV], [3, T, CART], [1, T, BUY]];
    const buyThenCart: [number, number, number][] = [[5, T, BUY], [3, T, CART], [1, T, PV]];
    expect(countsOf(cartThenBuy)).toBe(countsOf(buyThenCart));
    expect(logitOf(0, buyThenCart) - logitOf(0, cartThenBuy)).toBeCloseTo(TRUTH.abandonedCart, 6);
    // In the generated data the signal is common among customers whose counts cannot tell it: with a cart and
    // a purchase in the lookback, some carts are pending and some are not.
    const width = TARGETS * STATS + OVERALL;
    let pending = 0;
    let closed = 0;
    for (let r = 0; r < kt.score.customerIds.length; r++) {
      const s = kt.score.stats.subarray(r * width, (r + 1) * width);
      if (s[S_CARTS]! > 0 && s[TARGETS * STATS + BUY]! > 0) {
        const lastCart = s[S_LAST_CART]!;
        const lastBuy = s[TARGETS * STATS + O_LAST_BUY]!;
        if (lastBuy > lastCart) closed++;
        else pending++;
      }
    }
    expect(pending).toBeGreaterThan(50);
    expect(closed).toBeGreaterThan(50);
  });

  test('the same seed writes the same bytes; another seed does not', async () => {
    const again = generateKnownTruth({ customers: 1500, out: path.join(dir, 'b'), seed: 11 });
    const other = generateKnownTruth({ customers: 1500, out: path.join(dir, 'c'), seed: 12 });
    for (const file of ['events.csv', 'truth.csv', 'job.yaml']) {
      expect((await readFile(path.join(again.dir, file))).equals(await readFile(path.join(kt.dir, file))), file).toBe(true);
    }
    expect((await readFile(other.eventsFile)).equals(await readFile(kt.eventsFile))).toBe(false);
  });
});

describe("the benchmark's AUC intervals (DeLong)", () => {
  test('a worked example: AUC 5/6 with variance 1/18', () => {
    // Positives 0.9, 0.4; negatives 0.5, 0.2, 0.1. V10 = (1, 2/3), V01 = (1/2, 1, 1): S10 = 1/18, S01 = 1/12.
    const r = aucWithCi(Int8Array.from([1, 1, 0, 0, 0]), [0.9, 0.4, 0.5, 0.2, 0.1])!;
    expect(r.auc).toBeCloseTo(5 / 6, 12);
    expect(r.se).toBeCloseTo(Math.sqrt(1 / 18), 12);
    expect(r.upper).toBe(1);
  });

  test('the AUC equals the evaluation metrics\' (ties included), and a paired difference with itself is exactly 0', () => {
    const width = kt.products.length;
    const labels = Int8Array.from({ length: kt.score.customerIds.length }, (_, r) => kt.score.labels[r * width]!);
    // Rounded to 2 decimals so that there are many ties.
    const scores = Float32Array.from({ length: labels.length }, (_, r) => Math.round(kt.score.probability[r * width]! * 100) / 100);
    const r = aucWithCi(labels, scores)!;
    expect(r.auc).toBeCloseTo(computeMetrics(labels, scores).auc!, 9);
    expect(r.lower).toBeLessThan(r.auc);
    expect(r.upper).toBeGreaterThan(r.auc);
    const self = pairedAucDifference(labels, scores, scores)!;
    expect([self.auc, self.se]).toEqual([0, 0]);
    // Against a noisier score on the same customers the difference is positive, and pairing (the two scores
    // are correlated) makes its standard error smaller than that of two independent AUCs.
    const noisy = Float32Array.from(scores, (s, i) => s + ((i * 7919) % 100) / 500);
    const d = pairedAucDifference(labels, scores, noisy)!;
    expect(d.auc).toBeCloseTo(r.auc - aucWithCi(labels, noisy)!.auc, 12);
    expect(d.auc).toBeGreaterThan(0);
    expect(d.se).toBeLessThan(Math.hypot(r.se, aucWithCi(labels, noisy)!.se));
    expect(aucWithCi(Int8Array.from([0, 0]), [0.1, 0.2])).toBeNull();
  });
});

