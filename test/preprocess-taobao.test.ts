import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { InputError } from '../core/errors.js';
import { toSequenceBatch } from '../proto/shard-batch.js';
import { preprocess, type PreprocessResult } from '../coordinator/preprocess/index.js';
import { byCustomer, duck, readFeatureRows, readSet, taobaoJob, withTempDir, TAOBAO_EVENTS } from './helpers/preprocess.js';

describe('preprocess on the real Taobao sample', () => {
  test('as-of 2017-12-02, H = 2: 814 customers and 237 positives for `any`; the 35 stray rows are quarantined', async () => {
    await withTempDir(async (dir) => {
      const r: PreprocessResult = await preprocess({ job: taobaoJob({ products: { topCategories: 3 } }), scoreDate: '2017-12-02', runDir: dir });

      expect(r.score!.customers).toBe(814);
      expect(r.score!.labelled).toBe(true);
      expect(r.score!.positives.any).toBe(237);
      expect(r.score!.asOf).toBe('2017-12-02');
      expect(r.train!.asOf).toBe('2017-11-30');

      // The README's figure, computed independently with plain SQL over the raw file.
      const [raw] = await duck<{ buyers: number; users: number }>(`
        SELECT count(DISTINCT user_id) FILTER (WHERE behavior_type = 'buy' AND "timestamp" >= ${Date.UTC(2017, 11, 2) / 1000} AND "timestamp" < ${Date.UTC(2017, 11, 4) / 1000})::DOUBLE AS buyers,
               count(DISTINCT user_id)::DOUBLE AS users
        FROM read_csv('${TAOBAO_EVENTS}')`);
      expect(r.score!.positives.any).toBe(raw!.buyers);
      expect(r.score!.customers).toBe(raw!.users);

      expect(r.stats.rowsRead).toBe(84_287);
      expect(r.stats.rejected.time_out_of_range).toBe(35);
      expect(r.stats.rowsAccepted).toBe(84_287 - 35);
      expect(r.stats.quarantineFile).toBe(path.join(dir, 'quarantine.parquet'));
      const q = await duck<{ timestamp: string; reason: string; source_file: string }>(`SELECT * FROM '${r.stats.quarantineFile}'`);
      expect(q).toHaveLength(35);
      expect(new Set(q.map((x) => x.reason))).toEqual(new Set(['time_out_of_range']));
      expect(q.every((x) => Number(x.timestamp) < Date.UTC(2017, 10, 24, 16) / 1000)).toBe(true);
      expect(q[0]!.source_file).toBe(TAOBAO_EVENTS);

      // Products: any, then the 3 categories with most purchasing customers before D.
      expect(r.products.map((p) => p.name)).toHaveLength(4);
      expect(r.products[0]).toEqual({ name: 'any', category: null });
      const top = await duck<{ c: string }>(`
        SELECT category_id::VARCHAR AS c FROM read_csv('${TAOBAO_EVENTS}')
        WHERE behavior_type = 'buy' AND "timestamp" >= ${Date.UTC(2017, 10, 24, 16) / 1000} AND "timestamp" < ${Date.UTC(2017, 11, 2) / 1000}
        GROUP BY category_id ORDER BY count(DISTINCT user_id) DESC, category_id LIMIT 3`);
      expect(r.products.slice(1).map((p) => p.category)).toEqual(top.map((t) => t.c));

      // Every shard batch decodes into the dense form models read.
      const { rows, batches } = await readSet(r.score!);
      const dense = batches.map(toSequenceBatch);
      expect(dense.reduce((n, b) => n + b.size, 0)).toBe(814);
      expect(dense[0]!.products).toEqual(r.products.map((p) => p.name));
      expect(Math.max(...rows.map((x) => x.event.length))).toBeLessThanOrEqual(50);
      expect(rows.filter((x) => x.labels![0] === 1)).toHaveLength(237);

      // The aggregate features: one row per customer of the set and product; the lookback's counts add up to its history.
      const counts = (await readFeatureRows(r.score!, taobaoJob({ products: { topCategories: 3 } }))).filter((f) => f.product === 'any').sort((a, b) => (a.customer_id < b.customer_id ? -1 : 1));
      expect(Object.keys(counts[0]!).slice(0, 3)).toEqual(['customer_id', 'product', 'cat_n_pv_1d']);
      expect(counts).toHaveLength(814);
      const one = byCustomer(rows).get(String(counts[0]!.customer_id))!;
      const n = Number(counts[0]!.all_n_pv_7d) + Number(counts[0]!.all_n_cart_7d) + Number(counts[0]!.all_n_fav_7d) + Number(counts[0]!.all_n_buy_7d);
      expect(n).toBe(one.history_length);
    });
  });

  test('with validFrom as the UTC day 2017-11-25 the sample breaks the 1 % threshold, and the error says what to do', async () => {
    await withTempDir(async (dir) => {
      // 2017-11-25 UTC also cuts 2017-11-24 16:00–24:00 UTC, the first 8 hours of the Beijing-time collection period.
      const job = taobaoJob({ validation: { validFromMs: Date.UTC(2017, 10, 25), maxRejectedShare: 0.01 } });
      const error = await preprocess({ job, scoreDate: '2017-12-02', runDir: dir }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InputError);
      const message = (error as InputError).message;
      expect(message).toContain('1.65 %'); // 1,390 of 84,287
      expect(message).toContain('1.00 %');
      expect(message).toContain('time_out_of_range 1,390');
      expect(message).toContain(path.join(dir, 'quarantine.parquet'));
      expect(message).toContain('validation.maxRejectedShare');
      const [q] = await duck<{ n: number }>(`SELECT count(*)::DOUBLE AS n FROM '${path.join(dir, 'quarantine.parquet')}'`);
      expect(q!.n).toBe(1_390);
    });
  });
});
