import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { InputError } from '../core/errors.js';
import { loadVocabulary, preprocess, saveVocabulary, FIRST_TOKEN_ID, UNKNOWN_ID } from '../coordinator/preprocess/index.js';
import { byCustomer, duck, readSet, smallJob, withTempDir, writeEvents, type EventRow } from './helpers/preprocess.js';

const DAY = 86_400_000;
const D = Date.UTC(2024, 2, 10);
const T = D - 2 * DAY; // the training window for vocabularies is [T - 3 days, T)
const iso = (ms: number) => new Date(ms).toISOString();

/** Item counts in the training window: x 5, y 3, z 3, w 2, v 1; `late` only after T. */
function rows(): EventRow[] {
  const out: EventRow[] = [];
  const counts: Record<string, number> = { x: 5, y: 3, z: 3, w: 2, v: 1 };
  let k = 0;
  for (const [item, n] of Object.entries(counts)) {
    for (let i = 0; i < n; i++) out.push({ cid: `c${k % 4}`, ts: iso(T - DAY + (k++) * 60_000), kind: 'view', item, cat: item === 'x' ? 'big' : 'small' });
  }
  out.push({ cid: 'probe', ts: iso(D - 5 * 3_600_000), kind: 'view', item: 'x', cat: 'big' });
  out.push({ cid: 'probe', ts: iso(D - 4 * 3_600_000), kind: 'cart', item: 'w', cat: 'small' });
  out.push({ cid: 'probe', ts: iso(D - 3 * 3_600_000), kind: 'view', item: 'v', cat: 'small' });
  out.push({ cid: 'probe', ts: iso(D - 2 * 3_600_000), kind: 'buy', item: 'late', cat: 'fresh' });
  out.push({ cid: 'probe', ts: iso(D - 1 * 3_600_000), kind: 'view', item: 'z', cat: 'small' });
  for (let i = 0; i < 4; i++) out.push({ cid: 'later', ts: iso(T + i * 60_000), kind: 'view', item: 'late', cat: 'fresh' });
  return out;
}

describe('vocabularies', () => {
  test('built on the training window: frequency order, ties by value, minimum count, size cap, unknown = 1', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      await writeEvents(file, rows());
      const job = smallJob(file, { vocabulary: { minCount: 2, maxSize: 3 } });
      const r = await preprocess({ job, scoreDate: '2024-03-10', runDir: dir });
      expect(r.vocabulary.item).toEqual(['x', 'y', 'z']); // w (2) falls to the cap, v (1) to the minimum count
      expect(r.vocabulary.category).toEqual(['small', 'big']); // small 9, big 5; fresh is after T
      expect(r.vocabulary.event).toEqual(['view', 'cart', 'buy']);

      const probe = byCustomer((await readSet(r.score!)).rows).get('probe')!;
      const id = (tokens: string[], v: string) => (tokens.includes(v) ? FIRST_TOKEN_ID + tokens.indexOf(v) : UNKNOWN_ID);
      expect(probe.item).toEqual(['x', 'w', 'v', 'late', 'z'].map((v) => id(r.vocabulary.item!, v)));
      expect(probe.item).toEqual([2, 1, 1, 1, 4]);
      expect(probe.category).toEqual([3, 2, 2, 1, 2]);
      expect(probe.event).toEqual([2, 3, 2, 4, 2]);
      expect([...probe.item!, ...probe.category!, ...probe.event].every((t) => t > 0)).toBe(true); // 0 is padding only
    });
  });

  test('a frozen vocabulary and products are reused as given (saved and loaded as JSON), with integer item ids', async () => {
    await withTempDir(async (dir) => {
      const first = path.join(dir, 'first.parquet');
      const ints = rows().map((e, i) => ({ ...e, item: String(100 + ['x', 'y', 'z', 'w', 'v', 'late'].indexOf(e.item!)), n: i }));
      await writeEvents(path.join(dir, 'first.csv'), ints);
      // item as BIGINT: the frozen strings must find their way back to the column's own type.
      await duck(`COPY (SELECT cid, ts::TIMESTAMPTZ AS ts, kind, item::BIGINT AS item, cat FROM read_csv('${path.join(dir, 'first.csv')}', all_varchar = true)) TO '${first}'`);
      const job = smallJob(first, { vocabulary: { minCount: 2, maxSize: 3 }, products: { categories: ['fresh'] } });
      const r1 = await preprocess({ job, scoreDate: '2024-03-10', runDir: path.join(dir, 'r1') });
      expect(r1.vocabulary.item).toEqual(['100', '101', '102']);
      const vocabFile = path.join(dir, 'model', 'vocabulary.json');
      await saveVocabulary(vocabFile, r1.vocabulary);
      const frozen = await loadVocabulary(vocabFile);
      expect(frozen).toEqual(r1.vocabulary);

      // A later night with different data: a rebuilt vocabulary would differ, the frozen one must not.
      const later = path.join(dir, 'later.parquet');
      await duck(`COPY (SELECT cid, ts + INTERVAL 1 DAY AS ts, kind, CASE WHEN item = 100 THEN 999 ELSE item END AS item, cat
        FROM '${first}' UNION ALL SELECT 'new', TIMESTAMPTZ '2024-03-10 12:00:00+00', 'view', 999, 'small') TO '${later}'`);
      const r2 = await preprocess({
        job: smallJob(later, { vocabulary: { minCount: 2, maxSize: 3 }, products: { categories: ['small'] } }),
        scoreDate: '2024-03-11',
        runDir: path.join(dir, 'r2'),
        sets: ['score'],
        vocabulary: frozen,
        products: r1.products,
      });
      expect(r2.vocabulary).toEqual(r1.vocabulary);
      expect(r2.products).toEqual(r1.products);
      expect(r2.train).toBeUndefined();
      const probe = byCustomer((await readSet(r2.score!)).rows).get('probe')!;
      expect(probe.item).toEqual([1, 1, 1, 1, 4]); // 100 became 999 (unknown); 102 keeps id 4
      expect(probe.category).toEqual([3, 2, 2, 1, 2]);
    });
  });

  test('a frozen vocabulary maps event types by name, whatever order the job lists them in', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      await writeEvents(file, rows());
      const r = await preprocess({
        job: smallJob(file, { events: { types: ['buy', 'cart', 'view'], purchase: 'buy' } }),
        scoreDate: '2024-03-10',
        runDir: dir,
        vocabulary: { item: [], category: [], event: ['view', 'cart', 'buy'] },
      });
      expect(byCustomer((await readSet(r.score!)).rows).get('probe')!.event).toEqual([2, 3, 2, 4, 2]);
    });
  });

  test('loading something that is not a saved vocabulary says so', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'v.json');
      await writeFile(file, JSON.stringify({ item: ['a'] }));
      await expect(loadVocabulary(file)).rejects.toThrow(InputError);
      await expect(loadVocabulary(path.join(dir, 'missing.json'))).rejects.toThrow(/cannot be read/);
    });
  });
});
