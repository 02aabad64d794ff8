import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { preprocess } from '../coordinator/preprocess/index.js';
import { toSequenceBatch } from '../proto/shard-batch.js';
import { byCustomer, duck, readFeatureRows, readSet, smallJob, withTempDir, writeEvents, type EventRow, type ShardRow } from './helpers/preprocess.js';

const DAY = 86_400_000;
const D = Date.UTC(2024, 2, 10); // score as-of; H = 2 days, lookback 3 days
const T = D - 2 * DAY; // train as-of
const H = 2 * DAY;
const iso = (ms: number) => new Date(ms).toISOString();
/**
 * Numeric marks: events at or after D carry LEAK (no feature of either set may hold them); events in [T, D)
 * carry LEAK_T (legitimate score features, never train features); all others small values.
 */
const LEAK = 9999;
const LEAK_T = 7777;
const mark = (x: number) => Math.fround(Math.log1p(x));
const COLUMNS = ['cid', 'ts', 'kind', 'item', 'cat', 'price'];

function ev(cid: string, ms: number, kind: string, price: number, item = 'i1', cat = 'c1'): EventRow {
  return { cid, ts: iso(ms), kind, item, cat, price: String(price) };
}

const rows: EventRow[] = [
  // `a`: history on both sides of both as-of times; everything at or after an as-of time is marked LEAK for that set.
  ev('a', D - 3 * DAY - 1, 'view', 1), // just before the score lookback: in neither score feature nor label
  ev('a', D - 3 * DAY, 'view', 2), // first score feature event (the lookback's start is inclusive)
  ev('a', T - 1, 'cart', 3), // last train feature event
  ev('a', T, 'cart', LEAK_T, 'leak-item-T'), // at the train as-of time exactly
  ev('a', D - 1, 'view', 4), // last score feature event
  ev('a', D, 'cart', LEAK, 'leak-item-D'), // at the score as-of time exactly
  ev('a', D + 1, 'buy', LEAK, 'leak-item-D'), // in the score label window
  ev('a', D + 5 * DAY, 'buy', LEAK, 'leak-item-D'), // far future
  // Label boundaries for the score set [D, D + H): one customer per edge, each known before D.
  ev('before', T - DAY, 'view', 1), // known before T too, so it is in the train set
  ev('before', D - 1, 'buy', 1),
  ev('start', D - DAY, 'view', 1),
  ev('start', D, 'buy', LEAK),
  ev('last', D - DAY, 'view', 1),
  ev('last', D + H - 1, 'buy', LEAK),
  ev('after', D - DAY, 'view', 1),
  ev('after', D + H, 'buy', LEAK),
  // Per-category labels: `shoes` buys count for the shoes product only.
  ev('shoe', D - DAY, 'view', 1, 'i2', 'shoes'),
  ev('shoe', D + DAY, 'buy', LEAK, 'i2', 'shoes'),
  // Known before the lookback, silent in it: listed with no history.
  ev('quiet', D - 10 * DAY, 'view', 1),
  // First seen at D: not a customer yet as of D.
  ev('new', D, 'view', LEAK),
  ev('new', D + DAY, 'buy', LEAK),
];

/** Lists `shoes` where the input has a shoes purchase (a listed category nobody bought is an input error). */
const job = (file: string, categories = ['shoes']) =>
  smallJob(file, {
    columns: { numeric: [{ column: 'price', min: 0 }] },
    products: { overall: true, categories },
    sequence: { lookbackDays: 3, maxLength: 10 },
  });

function featureValues(r: ShardRow): number[] {
  return [...r.num_price!];
}

describe('point-in-time correctness', () => {
  test('no event at or after the as-of time reaches any feature column; labels use exactly [as-of, as-of + H)', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      await writeEvents(file, rows, COLUMNS);
      const r = await preprocess({ job: job(file), scoreDate: '2024-03-10', runDir: dir });
      expect(r.products.map((p) => p.name)).toEqual(['any', 'shoes']);
      const score = byCustomer((await readSet(r.score!)).rows);
      const train = byCustomer((await readSet(r.train!)).rows);

      for (const [set, asOf, rowsOf] of [['score', D, score], ['train', T, train]] as const) {
        for (const row of rowsOf.values()) {
          // Every feature column: a planted event would show as a LEAK value, an age of 0, an extra list entry.
          expect(featureValues(row), `${set} ${row.customer_id}`).not.toContain(mark(LEAK));
          if (set === 'train') expect(featureValues(row), `train ${row.customer_id}`).not.toContain(mark(LEAK_T));
          expect(row.age.every((x) => x > 0), `${set} ${row.customer_id} ages`).toBe(true);
          const lengths = [row.item!, row.category!, row.event, row.dt, row.age, row.num_price!].map((l) => l.length);
          expect(new Set(lengths).size).toBe(1);
          expect(lengths[0]).toBe(Math.min(row.history_length, 10));
        }
        const expectedA = rows.filter((e) => e.cid === 'a' && Date.parse(String(e.ts)) < asOf && Date.parse(String(e.ts)) >= asOf - 3 * DAY);
        expect(rowsOf.get('a')!.history_length, set).toBe(expectedA.length);
        expect(featureValues(rowsOf.get('a')!)).toEqual(expectedA.map((e) => mark(Number(e.price))));
        expect(rowsOf.get('a')!.age.at(-1)).toBeCloseTo(Math.log1p(0.001), 6); // the last feature event is 1 ms before as-of
      }
      // Items first seen at or after the training as-of time are not in the vocabulary.
      expect(r.vocabulary.item).not.toContain('leak-item-T');
      expect(r.vocabulary.item).not.toContain('leak-item-D');

      const labels = (c: string) => score.get(c)!.labels;
      expect(labels('before')).toEqual([0, 0]);
      expect(labels('start')).toEqual([1, 0]);
      expect(labels('last')).toEqual([1, 0]);
      expect(labels('after')).toEqual([0, 0]);
      expect(labels('shoe')).toEqual([1, 1]);
      expect(labels('a')).toEqual([1, 0]);
      // The train set's label window is [T, T + H) = [D - H, D): `before` bought at D - 1 ms, inside it.
      expect(train.get('before')!.labels).toEqual([1, 0]);
      expect(train.get('a')!.labels).toEqual([0, 0]); // a cart at T, no buy

      // Customers: known before as-of, with or without recent history; `new` is not known yet.
      expect(score.has('new')).toBe(false);
      expect(score.get('quiet')!.history_length).toBe(0);
      expect(score.get('quiet')!.event).toEqual([]);
      expect(r.score!.noHistory).toBe(1);
      expect(r.score!.customers).toBe(7); // a, before, start, last, after, shoe, quiet
      expect(r.score!.positives).toEqual({ any: 4, shoes: 1 });

      // dt: log1p(seconds since the previous feature event), 0 for the first; age from the as-of time.
      const a = score.get('a')!;
      const times = rows.filter((e) => e.cid === 'a').map((e) => Date.parse(String(e.ts))).filter((t) => t >= D - 3 * DAY && t < D);
      expect(a.dt).toEqual(times.map((t, i) => Math.fround(i === 0 ? 0 : Math.log1p((t - times[i - 1]!) / 1000))));
      expect(a.age).toEqual(times.map((t) => Math.fround(Math.log1p((D - t) / 1000))));

      // The aggregate features follow the same windows (the widest window covers the whole lookback).
      const counts = (await readFeatureRows(r.score!, job(file))).filter((f) => f.product === 'any');
      const quiet = counts.find((c) => c.customer_id === 'quiet')!;
      expect(quiet.all_days_since_event).toBeNull();
      const ca = counts.find((c) => c.customer_id === 'a')!;
      expect([ca.all_n_view_7d, ca.all_n_cart_7d, ca.all_n_buy_7d]).toEqual([2, 2, 0]);
      expect(ca.all_days_since_event).toBeCloseTo(1 / DAY, 9);
    });
  });

  test('the last max_length events are kept in time order, dt reaching back past the cut', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      const many = Array.from({ length: 30 }, (_, i) => ev('long', D - DAY + i * 60_000, i % 2 ? 'cart' : 'view', i));
      await writeEvents(file, many, COLUMNS);
      const r = await preprocess({ job: job(file, []), scoreDate: '2024-03-10', runDir: dir, sets: ['score'] });
      const row = (await readSet(r.score!)).rows[0]!;
      expect(row.history_length).toBe(30);
      expect(row.num_price).toEqual(many.slice(20).map((e) => Math.fround(Math.log1p(Number(e.price)))));
      expect(row.dt[0]).toBeCloseTo(Math.log1p(60), 5); // the 21st event's predecessor was cut, its gap is kept
      expect(r.train).toBeUndefined();
    });
  });

  test('a score set whose label window the data does not cover yet has no labels column', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      // The newest event is at D + 12 h: labels would need data up to D + H - 1 day = D + 1 day.
      await writeEvents(file, [ev('a', D - DAY, 'view', 1), ev('a', D + 12 * 3_600_000, 'buy', 1), ev('b', T - DAY, 'view', 1), ev('b', T + 1, 'buy', 1)], COLUMNS);
      const r = await preprocess({ job: job(file, []), scoreDate: '2024-03-10', runDir: dir });
      expect(r.score!.labelled).toBe(false);
      expect(r.score!.positives).toEqual({});
      const { rows, batches } = await readSet(r.score!);
      expect(batches[0]!.schema.fields.map((f) => f.name)).not.toContain('labels');
      expect(toSequenceBatch(batches[0]!).labels).toBeNull();
      expect(rows.map((x) => x.customer_id).sort()).toEqual(['a', 'b']);
      // The train set's labels lie in [T, D): always covered.
      expect(r.train!.labelled).toBe(true);
      expect(r.train!.positives).toEqual({ any: 1 });
    });
  });
});
