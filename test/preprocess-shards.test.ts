import { stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { mulberry32 } from '../core/random.js';
import { preprocess, shardsOfCustomerId, type PreprocessResult } from '../coordinator/preprocess/index.js';
import { readSet, smallJob, withTempDir, writeEvents, type EventRow } from './helpers/preprocess.js';

const DAY = 86_400_000;
const D = Date.UTC(2024, 2, 10);
const T = D - 2 * DAY;
const CUSTOMERS = 400;

/** 400 customers with a few events before T; every 8th buys in the train label window [T, D). */
function rows(): EventRow[] {
  const next = mulberry32(99);
  const out: EventRow[] = [];
  for (let c = 0; c < CUSTOMERS; c++) {
    const cid = `customer-${c}`;
    const n = 1 + Math.floor(next() * 4);
    for (let i = 0; i < n; i++) out.push({ cid, ts: new Date(T - Math.floor(next() * 3 * DAY)).toISOString(), kind: 'view', item: 'i', cat: 'c' });
    if (c % 8 === 0) out.push({ cid, ts: new Date(T + Math.floor(next() * 2 * DAY)).toISOString(), kind: 'buy', item: 'i', cat: 'c' });
  }
  return out;
}

async function runWith(dir: string, name: string, file: string, o: { batchRows: number; negativeRate: number }): Promise<PreprocessResult> {
  const job = smallJob(file, { shards: { count: 5, batchRows: o.batchRows }, sampling: { negativeRate: o.negativeRate }, model: { validationShare: 0.25 } });
  return preprocess({ job, scoreDate: '2024-03-10', runDir: path.join(dir, name) });
}

describe('shards', () => {
  test('every customer lands in exactly one shard, the same one on every run, in batches of at most batchRows', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      await writeEvents(file, rows());
      const a = await runWith(dir, 'a', file, { batchRows: 7, negativeRate: 1 });
      const b = await runWith(dir, 'b', file, { batchRows: 64, negativeRate: 1 });

      for (const set of ['train', 'score'] as const) {
        const ra = await readSet(a[set]!);
        const ids = ra.rows.map((r) => r.customer_id);
        expect(ids).toHaveLength(CUSTOMERS);
        expect(new Set(ids).size).toBe(CUSTOMERS);
        expect(a[set]!.customers).toBe(CUSTOMERS);

        // The batch bound holds and batches are filled up to it.
        expect(Math.max(...ra.batchSizes)).toBe(7);
        expect(ra.batchSizes.every((n) => n >= 1 && n <= 7)).toBe(true);
        for (const f of a[set]!.shards) {
          expect(f.bytes).toBe((await stat(f.file)).size);
          expect(path.basename(f.file)).toMatch(/^shard-\d\.arrow$/);
        }
        expect(a[set]!.shards.map((f) => f.rows).reduce((x, y) => x + y)).toBe(CUSTOMERS);

        // Stable: a different batch size, another run, the lookup `explain` uses — all agree on each customer's shard.
        const rb = await readSet(b[set]!);
        const shardA = new Map(ra.rows.map((r) => [r.customer_id, r.shard]));
        for (const r of rb.rows) expect(shardA.get(r.customer_id)).toBe(r.shard);
        for (const [id, shard] of [...shardA].slice(0, 20)) expect(await shardsOfCustomerId(id, 5)).toEqual([shard]);
        // And the hash spreads customers over all shards.
        expect(new Set(shardA.values()).size).toBe(5);
      }
    });
  });

  test('negatives are downsampled at the job rate with weight 1/rate; positives are all kept; the split holds out a share', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      await writeEvents(file, rows());
      const full = await runWith(dir, 'full', file, { batchRows: 64, negativeRate: 1 });
      const r = await runWith(dir, 'sampled', file, { batchRows: 64, negativeRate: 0.25 });
      const again = await runWith(dir, 'again', file, { batchRows: 64, negativeRate: 0.25 });

      const all = (await readSet(full.train!)).rows;
      const sampled = (await readSet(r.train!)).rows;
      const positives = all.filter((x) => x.labels![0] === 1);
      const negatives = all.length - positives.length;
      expect(positives).toHaveLength(CUSTOMERS / 8);

      const keptPositives = sampled.filter((x) => x.labels![0] === 1);
      const keptNegatives = sampled.filter((x) => x.labels![0] === 0);
      expect(keptPositives).toHaveLength(positives.length);
      expect(keptPositives.every((x) => x.weight === 1)).toBe(true);
      expect(keptNegatives.every((x) => x.weight === 4)).toBe(true);
      // Binomial(350, 0.25): mean 87.5, sd 8.1 — the hash keeps a fair share, and the weights restore the total.
      expect(keptNegatives.length).toBeGreaterThan(0.25 * negatives - 4 * 8.1);
      expect(keptNegatives.length).toBeLessThan(0.25 * negatives + 4 * 8.1);
      const weighted = keptNegatives.reduce((s, x) => s + x.weight, 0);
      expect(Math.abs(weighted - negatives) / negatives).toBeLessThan(0.4);
      expect(r.train!.positives.any).toBe(positives.length);
      expect(r.train!.customers).toBe(sampled.length);

      // The same customers are kept on every run.
      const keptAgain = (await readSet(again.train!)).rows.map((x) => x.customer_id).sort();
      expect(keptAgain).toEqual(sampled.map((x) => x.customer_id).sort());

      // Validation split by customer hash: about the share asked for, the same customers on every run; none in the score set.
      const held = all.filter((x) => x.split === 1).length / all.length;
      expect(held).toBeGreaterThan(0.25 - 4 * 0.022);
      expect(held).toBeLessThan(0.25 + 4 * 0.022);
      const splitFull = new Map(all.map((x) => [x.customer_id, x.split]));
      for (const x of sampled) expect(x.split).toBe(splitFull.get(x.customer_id));
      const score = (await readSet(r.score!)).rows;
      expect(score).toHaveLength(CUSTOMERS); // no downsampling when scoring
      expect(score.every((x) => x.weight === 1 && x.split === 0)).toBe(true);
    });
  });
});
