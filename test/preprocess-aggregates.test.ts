import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { transformAggregate } from '../coordinator/features/index.js';
import { preprocess } from '../coordinator/preprocess/index.js';
import { byCustomer, duck, readFeatureRows, readSet, smallJob, withTempDir, writeEvents, type EventRow } from './helpers/preprocess.js';

const DAY = 86_400_000;
const D = Date.UTC(2024, 2, 10); // score as-of; H = 2 days, lookback 7 days, windows 1 and 7 days
// The train set's as-of is T = D − 2 days.
const iso = (ms: number) => new Date(ms).toISOString();
const COLUMNS = ['cid', 'ts', 'kind', 'item', 'cat', 'price'];
const ev = (cid: string, ms: number, kind: string, cat: string, price = 1): EventRow => ({ cid, ts: iso(ms), kind, item: 'i1', cat, price: String(price) });

const rows: EventRow[] = [
  // `a`: first seen 20 days before D (outside the lookback: tenure only), then shoes and hats activity.
  ev('a', D - 20 * DAY, 'view', 'hats'),
  ev('a', D - 6 * DAY, 'view', 'shoes', 5),
  ev('a', D - 3 * DAY - 1, 'buy', 'shoes', 40), // the train set's last shoes purchase: 1 day + 1 ms before T
  ev('a', D - 12 * 3_600_000, 'cart', 'shoes', 7), // 12 h before D: in the 1-day window of the score set
  ev('a', D - 2 * 3_600_000, 'view', 'hats', 2),
  ev('a', D + 3_600_000, 'buy', 'shoes', 99), // after D: a label, never a feature
  // `b`: only hats, one purchase in the score lookback.
  ev('b', D - 5 * DAY, 'buy', 'hats', 10),
  ev('b', D - 4 * DAY, 'buy', 'shoes', 4),
  ev('b', D - 1 * DAY + 1, 'buy', 'shoes', 5),
  // keep `shoes` and `hats` in the vocabulary
  ev('c', D - 9 * DAY, 'view', 'shoes'),
  ev('c', D - 9 * DAY, 'view', 'hats'),
];

const job = (file: string) =>
  smallJob(file, {
    columns: { numeric: [{ column: 'price', min: 0 }] },
    products: { overall: true, categories: ['shoes'] },
    sequence: { lookbackDays: 7, maxLength: 2 },
    features: { windowsDays: [1, 7] },
  });

interface FeatureRow {
  customer_id: string;
  product: string;
  [name: string]: string | number | null;
}

describe('aggregate features', () => {
  test('count, recency, sums and tenure per product over the whole lookback, point in time, in the file and in the shards', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      await writeEvents(file, rows, COLUMNS);
      const r = await preprocess({ job: job(file), scoreDate: '2024-03-10', runDir: dir });
      const names = r.aggregateFeatures;
      expect(names).toContain('cat_n_cart_1d');
      expect(names).toContain('all_days_since_buy');
      expect(names).toContain('cat_sum_price_7d');
      expect(names.at(-1)).toBe('tenure_days');

      // Read back from the shards' float32 values (what the models read): sums and days within float32 rounding.
      const features = await readFeatureRows(r.score!, job(file));
      const get = (cid: string, product: string) => features.find((f) => f.customer_id === cid && f.product === product)!;
      const aShoes = get('a', 'shoes');
      // Whole lookback, not only the last maxLength (2) events: 3 shoes events, 5 events in all.
      expect(aShoes.cat_n_view_7d).toBe(1);
      expect(aShoes.cat_n_buy_7d).toBe(1);
      expect(aShoes.cat_n_cart_1d).toBe(1);
      expect(aShoes.cat_n_cart_7d).toBe(1);
      expect(aShoes.all_n_view_7d).toBe(2); // the hats view 20 days ago is outside the lookback
      expect(aShoes.all_n_view_1d).toBe(1);
      expect(aShoes.cat_sum_price_7d).toBeCloseTo(5 + 40 + 7, 4); // the 99 after D is a label, not a feature
      expect(aShoes.cat_mean_price_7d).toBeCloseTo((5 + 40 + 7) / 3, 4);
      expect(aShoes.cat_mean_price_1d).toBeCloseTo(7, 4);
      expect(aShoes.cat_days_since_event).toBeCloseTo(0.5, 4);
      expect(aShoes.all_days_since_event).toBeCloseTo(2 / 24, 4);
      expect(aShoes.cat_days_since_buy).toBeCloseTo(3 + 1 / DAY, 4);
      expect(aShoes.tenure_days).toBeCloseTo(20, 4);
      // `any` reads every category in both scopes.
      const aAny = get('a', 'any');
      expect(aAny.cat_n_view_7d).toBe(2);
      expect(aAny.cat_sum_price_7d).toBeCloseTo(5 + 40 + 7 + 2, 4);
      // No shoes event for `c` in the lookback: recency is NULL ("never"), counts 0.
      const cShoes = get('c', 'shoes');
      expect(cShoes.cat_days_since_event).toBeNull();
      expect(cShoes.cat_n_view_7d).toBe(0);
      expect(get('b', 'shoes').cat_n_buy_7d).toBe(2);
      expect(get('b', 'shoes').all_n_buy_7d).toBe(3);

      // The train set (as of T) sees nothing at or after T.
      const train = (await readFeatureRows(r.train!, job(file))).filter((f) => f.customer_id === 'a' && f.product === 'shoes');
      expect(train[0]!.cat_n_cart_7d).toBe(0);
      expect(train[0]!.cat_days_since_buy).toBeCloseTo(1 + 1 / DAY, 4);

      // The shard's `wide` column holds the transformed values, products × features, product-major.
      const { rows: shardRows, batches } = await readSet(r.score!);
      const wide = byCustomer(shardRows).get('a')!.wide;
      const products = JSON.parse(batches[0]!.schema.metadata.get('nextbuy.products')!) as string[];
      expect(JSON.parse(batches[0]!.schema.metadata.get('nextbuy.wide_features')!)).toEqual(names);
      expect(wide).toHaveLength(products.length * names.length);
      const p = products.indexOf('shoes');
      names.forEach((name, j) => {
        const kind = name.includes('_days_since_') ? 'days' : name === 'tenure_days' ? 'tenure' : name.includes('_sum_') ? 'sum' : name.includes('_mean_') ? 'mean' : 'count';
        const raw = aShoes[name] === null ? Number.NaN : Number(aShoes[name]);
        expect(wide[p * names.length + j]).toBeCloseTo(transformAggregate(kind, raw, 7), 5);
      });
    });
  });

  test('training.snapshots stacks earlier as-of dates: one train row per customer and snapshot, each point in time', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      await writeEvents(file, rows, COLUMNS);
      const r = await preprocess({ job: { ...job(file), training: { snapshots: 3 } }, scoreDate: '2024-03-10', runDir: dir });
      const { rows: train } = await readSet(r.train!);
      const snapshotsOf = (cid: string) => train.filter((x) => x.customer_id === cid).map((x) => x.snapshot).sort();
      // a: known since D − 20 days, so a customer as of T, T − 2d and T − 4d.
      expect(snapshotsOf('a')).toEqual([0, 1, 2]);
      // b: first event D − 5 days = T − 3 days: a customer as of T and T − 2d only.
      expect(snapshotsOf('b')).toEqual([0, 1]);
      // Labels per snapshot: b's shoes purchase at D − 4 days lies in [T − 2d, T) = snapshot 1's label window.
      const bRows = train.filter((x) => x.customer_id === 'b');
      const products = ['any', 'shoes'];
      const labelOf = (snapshot: number) => bRows.find((x) => x.snapshot === snapshot)!.labels![products.indexOf('shoes')];
      expect(labelOf(1)).toBe(1);
      expect(labelOf(0)).toBe(1); // D − 1 day + 1 ms is in [T, T + 2d)
      // The split is by customer: every row of a customer has the same one.
      for (const cid of ['a', 'b']) expect(new Set(train.filter((x) => x.customer_id === cid).map((x) => x.split)).size).toBe(1);
      // The features as the evaluation reads them: the latest snapshot only, one row per customer and product.
      expect((await readFeatureRows(r.train!, job(file))).filter((f) => f.customer_id === 'a')).toHaveLength(2);
    });
  });
});
