import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { preprocess } from '../coordinator/preprocess/index.js';
import { byCustomer, duck, readSet, smallJob, withTempDir } from './helpers/preprocess.js';

const HEAVY_EVENTS = 100_000;
const D = Date.UTC(2024, 2, 10);
const SECOND = 1000;

describe('memory', () => {
  test('one customer with 100,000 events under a small memory_limit: DuckDB spills, the sequence keeps the last max_length', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.parquet');
      // `heavy`: one event every 2 s over the 3 days before D (a few land before the lookback), shuffled by a hash;
      // 300 light customers beside it; long ids so the sort carries real payload.
      await duck(`COPY (
          SELECT * FROM (
            SELECT 'heavy-customer-with-a-long-identifier' AS cid, ${D} - (i + 1) * ${2 * SECOND} AS ts_ms,
                   CASE WHEN i % 97 = 0 THEN 'buy' WHEN i % 5 = 0 THEN 'cart' ELSE 'view' END AS kind,
                   'item-' || (i % 1000) AS item, 'cat-' || (i % 17) AS cat, (i % 500)::DOUBLE AS price
            FROM range(${HEAVY_EVENTS}) t(i)
            UNION ALL
            SELECT 'light-' || (i % 300), ${D} - (i + 1) * 600 * ${SECOND}, 'view', 'item-' || (i % 50), 'cat-1', 1.0
            FROM range(1200) t(i)
          ) ORDER BY hash(ts_ms, cid)
        ) TO '${file}'`);
      const job = smallJob(file, {
        input: { timeFormat: 'epoch_millis' },
        columns: { time: 'ts_ms', numeric: [{ column: 'price', min: 0 }] },
        sequence: { lookbackDays: 3, maxLength: 50 },
        shards: { count: 4, batchRows: 64 },
        resources: { memoryLimit: '24MB', threads: 1 },
      });
      const runDir = path.join(dir, 'run');
      const r = await preprocess({ job, scoreDate: '2024-03-10', runDir });

      const lookbackStart = D - 3 * 86_400_000;
      const inLookback = Array.from({ length: HEAVY_EVENTS }, (_, i) => D - (i + 1) * 2 * SECOND).filter((t) => t >= lookbackStart);
      const heavy = byCustomer((await readSet(r.score!)).rows).get('heavy-customer-with-a-long-identifier')!;
      expect(heavy.history_length).toBe(inLookback.length);
      expect(heavy.event).toHaveLength(50);
      // The newest 50, oldest first: event i was 2(i + 1) s before D.
      expect(heavy.age).toEqual(Array.from({ length: 50 }, (_, j) => Math.fround(Math.log1p(2 * (50 - j)))));
      expect(heavy.dt.slice(1).every((x) => x === Math.fround(Math.log1p(2)))).toBe(true);
      expect(heavy.num_price).toEqual(Array.from({ length: 50 }, (_, j) => Math.fround(Math.log1p(49 - j))));
      expect(r.score!.customers).toBe(301);
      expect(r.stats.rowsRead).toBe(HEAVY_EVENTS + 1200);
      // DuckDB's spill folder is removed when the step ends.
      expect(await readdir(runDir)).not.toContain('duckdb-tmp');
    });
  });
});
