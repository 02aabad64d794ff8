/**
 * Real event feeds at the preprocess stage: time zones of zone-less timestamps, the freshness gate's
 * last-day check, listed categories nobody bought, top categories ranked on the training window, and
 * expressions re-checked for jobs built in code.
 */
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { InputError, JobFileError } from '../core/errors.js';
import { preprocess } from '../coordinator/preprocess/index.js';
import { DAY_MS, duck, smallJob, withTempDir, writeEvents, type EventRow } from './helpers/preprocess.js';

const D = '2017-12-05';

async function errorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

describe('event feeds', () => {
  test('input.timeZone reads timestamps without a zone; ones with an offset stay as written', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      await writeEvents(file, [
        { cid: 'a', ts: '2017-12-03 10:00:00', kind: 'view', item: 'i', cat: 'c' },
        { cid: 'b', ts: '2017-12-01T10:00:00+00:00', kind: 'buy', item: 'i', cat: 'c' },
      ]);
      const lastAt = async (timeZone: string) => {
        const job = smallJob(file, { input: { timeZone }, validation: { maxStalenessMs: 30 * DAY_MS } });
        const r = await preprocess({ job, scoreDate: D, runDir: path.join(dir, timeZone.replace('/', '-')), sets: ['score'] });
        return r.stats.freshness!.lastEventAt;
      };
      expect(await lastAt('UTC')).toBe('2017-12-03T10:00:00.000Z');
      expect(await lastAt('Asia/Tokyo')).toBe('2017-12-03T01:00:00.000Z');
      expect(await lastAt('America/New_York')).toBe('2017-12-03T15:00:00.000Z');
      // A Parquet TIMESTAMP (no zone) is read in input.timeZone too.
      const parquet = path.join(dir, 'events.parquet');
      await duck(`COPY (SELECT cid, ts::TIMESTAMP AS ts, kind, item, cat FROM read_csv('${file}', all_varchar = true) WHERE cid = 'a') TO '${parquet}'`);
      const job = smallJob(parquet, { input: { timeZone: 'Asia/Tokyo' }, validation: { maxStalenessMs: 30 * DAY_MS } });
      const r = await preprocess({ job, scoreDate: D, runDir: path.join(dir, 'parquet'), sets: ['score'] });
      expect(r.stats.freshness!.lastEventAt).toBe('2017-12-03T01:00:00.000Z');
    });
  });

  test('a last day far below the week before it is refused, naming the day; minLastDayShare 0 turns the check off', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      const rows: EventRow[] = [];
      // 10 events a day on the 7 days before the last day (11-27 .. 12-03), then 1 on 12-04.
      for (let d = 1; d <= 7; d++) {
        const day = new Date(Date.parse('2017-12-04T00:00:00Z') - d * DAY_MS).toISOString().slice(0, 10);
        for (let k = 0; k < 10; k++) rows.push({ cid: `c${k}`, ts: `${day} 1${k}:00:00`, kind: 'view', item: 'i', cat: 'c' });
      }
      rows.push({ cid: 'c1', ts: '2017-12-04 09:00:00', kind: 'view', item: 'i', cat: 'c' });
      await writeEvents(file, rows);
      const job = (share: number) => smallJob(file, { validation: { maxStalenessMs: 2 * DAY_MS, minLastDayShare: share } });
      const e = await errorOf(preprocess({ job: job(0.2), scoreDate: D, runDir: path.join(dir, 'a'), sets: ['score'] }));
      expect(e).toBeInstanceOf(InputError);
      expect(e.message).toContain("the input's last day before 2017-12-05 (2017-12-04) holds 1 valid events, fewer than validation.minLastDayShare (0.2) of the 10.0 a day");
      const ok = await preprocess({ job: job(0), scoreDate: D, runDir: path.join(dir, 'b'), sets: ['score'] });
      expect(ok.stats.freshness).toMatchObject({ stale: null, allowedStale: false, lastDayEvents: 1, priorDailyMean: 10 });
    });
  });

  test('a listed category without a purchase is an error naming it and the closest bought categories', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      await writeEvents(file, [
        { cid: 'a', ts: '2017-12-01 10:00:00', kind: 'buy', item: 'i1', cat: 'shoes' },
        { cid: 'b', ts: '2017-12-02 10:00:00', kind: 'buy', item: 'i2', cat: 'shirts' },
        { cid: 'c', ts: '2017-12-03 10:00:00', kind: 'view', item: 'i3', cat: 'shoez2' },
      ]);
      const job = smallJob(file, { products: { overall: true, categories: ['shirts', 'shoez'] } });
      const e = await errorOf(preprocess({ job, scoreDate: D, runDir: path.join(dir, 'run') }));
      expect(e).toBeInstanceOf(InputError);
      expect(e.message).toContain('products.categories lists "shoez", but no purchase in the input');
      expect(e.message).toContain('the closest categories with purchases are "shoes", "shirts"');
    });
  });

  test('topCategories ranks distinct buyers in the training window, not all history', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      const rows: EventRow[] = [];
      // Training window for D = 12-05, horizon 2, lookback 3: [11-30, 12-05).
      for (let k = 0; k < 5; k++) rows.push({ cid: `old${k}`, ts: '2017-11-20 10:00:00', kind: 'buy', item: 'x', cat: 'old' });
      for (let k = 0; k < 2; k++) rows.push({ cid: `new${k}`, ts: '2017-12-01 10:00:00', kind: 'buy', item: 'y', cat: 'new' });
      rows.push({ cid: 'old0', ts: '2017-12-02 10:00:00', kind: 'buy', item: 'x', cat: 'old' });
      await writeEvents(file, rows);
      const job = smallJob(file, { products: { overall: false, topCategories: 1 } });
      const r = await preprocess({ job, scoreDate: D, runDir: path.join(dir, 'run') });
      expect(r.products).toEqual([{ name: 'new', category: 'new' }]);
    });
  });

  test('duplicates count against maxRejectedShare as they count in the summary: one rule', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      const rows: EventRow[] = [];
      for (let k = 0; k < 6; k++) rows.push({ cid: `c${k}`, ts: `2017-12-0${1 + (k % 3)} 10:00:00`, kind: 'view', item: 'i', cat: 'c' });
      for (let k = 0; k < 4; k++) rows.push({ cid: 'c0', ts: '2017-12-01 10:00:00', kind: 'view', item: 'i', cat: 'c' });
      await writeEvents(file, rows);
      const run = (share: number, name: string) => preprocess({ job: smallJob(file, { validation: { maxRejectedShare: share } }), scoreDate: D, runDir: path.join(dir, name) });
      const ok = await run(0.4, 'a');
      expect(ok.stats.rejected.duplicate).toBe(4);
      expect(ok.stats.rowsAccepted).toBe(6);
      const e = await errorOf(run(0.3, 'b'));
      expect(e).toBeInstanceOf(InputError);
      expect(e.message).toContain('40.0 % of the 10 input rows were rejected, more than the 30.0 % allowed (top reasons: duplicate 4)');
    });
  });

  test('an expression in a job built in code is checked when the input opens', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      await writeEvents(file, [{ cid: 'a', ts: '2017-12-01 10:00:00', kind: 'buy', item: 'i', cat: 'c' }]);
      const job = smallJob(file, { columns: { category: "getenv('HOME')" } });
      const e = await errorOf(preprocess({ job, scoreDate: D, runDir: path.join(dir, 'run') }));
      expect(e).toBeInstanceOf(JobFileError);
      expect(e.message).toContain('columns.category');
      expect(e.message).toContain('getenv()');
    });
  });
});
