import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { InputError } from '../core/errors.js';
import { preprocess } from '../coordinator/preprocess/index.js';
import { byCustomer, duck, readSet, smallJob, withTempDir, writeEvents, type EventRow } from './helpers/preprocess.js';

const D = '2024-03-10';
const COLUMNS = ['cid', 'ts', 'kind', 'item', 'cat', 'price'];
const job = (file: string, maxRejectedShare = 0.8) =>
  smallJob(file, {
    columns: { numeric: [{ column: 'price', min: 0 }] },
    validation: { validFromMs: Date.UTC(2024, 2, 1), validToMs: Date.UTC(2024, 2, 20), maxRejectedShare },
  });

const good: EventRow = { cid: 'a', ts: '2024-03-08 10:00:00', kind: 'view', item: 'i1', cat: 'c1', price: '5' };
/** Row order matters for the Parquet source_row check below. */
const ROWS: (EventRow & { expect: string })[] = [
  { ...good, expect: 'ok' },
  { ...good, cid: '', expect: 'missing_customer' },
  { ...good, cid: undefined as unknown as string, expect: 'missing_customer' },
  { ...good, ts: 'not a time', expect: 'bad_time' },
  { ...good, ts: undefined as unknown as string, expect: 'bad_time' },
  { ...good, ts: '2024-02-20 00:00:00', expect: 'time_out_of_range' },
  { ...good, ts: '2024-03-25 00:00:00', expect: 'time_out_of_range' },
  { ...good, kind: 'wishlist', expect: 'unknown_event_type' },
  { ...good, price: '-3', expect: 'negative_value' },
  { ...good, expect: 'duplicate' },
  { ...good, item: 'i2', expect: 'ok' }, // differs in one column: not a duplicate
  { ...good, cid: 'b', ts: '2024-03-09 08:00:00', kind: 'buy', item: 'i3', cat: 'c2', price: '12.5', expect: 'ok' },
  { ...good, cid: 'b', ts: '2024-03-09 08:00:00', kind: 'buy', item: 'i3', cat: 'c2', price: '12.5', expect: 'duplicate' },
  { ...good, cid: 'b', ts: '2024-03-09 08:00:00', kind: 'buy', item: 'i3', cat: 'c2', price: '12.5', expect: 'duplicate' },
  { ...good, cid: 'c', price: undefined as unknown as string, expect: 'ok' }, // a missing number reads 0, it is not rejected
  { ...good, cid: 'c', ts: '2024-03-15 00:00:00', expect: 'outside_window' }, // valid, after D + H
];

function expected(reason: string): number {
  return ROWS.filter((r) => r.expect === reason).length;
}

describe('validation', () => {
  test('each rule rejects its rows, counted by reason and written to the quarantine with their raw values', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      await writeEvents(file, ROWS, COLUMNS);
      const r = await preprocess({ job: job(file), scoreDate: D, runDir: path.join(dir, 'run') });

      for (const reason of ['missing_customer', 'bad_time', 'time_out_of_range', 'unknown_event_type', 'negative_value', 'duplicate'] as const) {
        expect(r.stats.rejected[reason], reason).toBe(expected(reason));
      }
      expect(r.stats.outsideWindow).toBe(expected('outside_window'));
      expect(r.stats.rowsRead).toBe(ROWS.length);
      expect(r.stats.rowsAccepted).toBe(expected('ok') + expected('outside_window'));

      const q = await duck<Record<string, string | null>>(`SELECT * FROM '${r.stats.quarantineFile}'`);
      expect(Object.keys(q[0]!)).toEqual([...COLUMNS, 'reason', 'source_file', 'source_row', 'detail', 'line_text']);
      const rejected = ROWS.filter((x) => !['ok', 'outside_window'].includes(x.expect));
      expect(q.map((x) => x.reason).sort()).toEqual(rejected.map((x) => x.expect).sort());
      expect(q.find((x) => x.reason === 'bad_time' && x.ts !== null)!.ts).toBe('not a time');
      expect(q.find((x) => x.reason === 'unknown_event_type')!.kind).toBe('wishlist');
      expect(q.find((x) => x.reason === 'negative_value')!.price).toBe('-3');
      expect(q.filter((x) => x.reason === 'duplicate').map((x) => x.cid).sort()).toEqual(['a', 'b', 'b']);
      expect(q.every((x) => x.source_file === file)).toBe(true);

      // Duplicates are kept once; the customer with a missing price still gets its event.
      const score = byCustomer((await readSet(r.score!)).rows);
      expect(score.get('b')!.history_length).toBe(1);
      expect(score.get('a')!.history_length).toBe(2); // i1 once (its copy dropped) and i2
      expect(score.get('c')!.num_price).toEqual([0]);
    });
  });

  test('Parquet input: the quarantine names the row of each rejected row', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.parquet');
      await writeEvents(file, ROWS, COLUMNS);
      const r = await preprocess({ job: job(file), scoreDate: D, runDir: path.join(dir, 'run') });
      const q = await duck<{ reason: string; source_row: bigint }>(`SELECT reason, source_row FROM '${r.stats.quarantineFile}' WHERE reason <> 'duplicate'`);
      const want = ROWS.map((x, i) => [x.expect, i] as const).filter(([e]) => !['ok', 'outside_window', 'duplicate'].includes(e));
      expect(q.map((x) => [x.reason, Number(x.source_row)]).sort()).toEqual(want.map(([e, i]) => [e, i]).sort());
      const dups = await duck<{ source_row: bigint }>(`SELECT source_row FROM '${r.stats.quarantineFile}' WHERE reason = 'duplicate' ORDER BY source_row`);
      // The first copy of each duplicated event is kept; the later rows are the rejected ones.
      expect(dups.map((x) => Number(x.source_row))).toEqual([9, 12, 13]);
    });
  });

  test('too many rejected rows fail the run with the share, the threshold, the top reasons, the file and the field to raise', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      await writeEvents(file, ROWS, COLUMNS);
      const error = await preprocess({ job: job(file, 0.1), scoreDate: D, runDir: path.join(dir, 'run') }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InputError);
      const m = (error as Error).message;
      // The rule-based rejects alone pass the threshold, so the run stops before sorting (duplicates not yet counted).
      const share = (ROWS.length - expected('ok') - expected('outside_window') - expected('duplicate')) / ROWS.length;
      expect(m).toContain(`${(share * 100).toFixed(1)} %`);
      expect(m).toContain('10.0 %');
      expect(m).toContain('top reasons: missing_customer 2, bad_time 2, time_out_of_range 2');
      expect(m).toContain(path.join(dir, 'run', 'quarantine.parquet'));
      expect(m).toContain('validation.maxRejectedShare');
    });
  });

  test('duplicates alone can pass the threshold: the check runs again once they are known', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      const rows: EventRow[] = [good, good, good, { ...good, cid: 'z' }];
      await writeEvents(file, rows, COLUMNS);
      const error = await preprocess({ job: job(file, 0.3), scoreDate: D, runDir: path.join(dir, 'run') }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InputError);
      expect((error as Error).message).toContain('duplicate 2');
      expect((error as Error).message).toContain('50.0 %');
    });
  });

  test('duplicates found early in a long stream do not cut it short: every later customer still comes through', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'many.parquet');
      // 6,000 customers × 2 events (several DuckDB chunks); customer 0000 repeats one event.
      await duck(`COPY (
          SELECT printf('%04d', i // 2) AS cid, strftime(TIMESTAMP '2024-03-08 00:00:00' + to_seconds(i % 2 * 60), '%Y-%m-%d %H:%M:%S') AS ts,
                 'view' AS kind, 'i1' AS item, 'c1' AS cat, '1' AS price
          FROM range(12000) t(i)
          UNION ALL SELECT '0000', '2024-03-08 00:00:00', 'view', 'i1', 'c1', '1'
        ) TO '${file}'`);
      const r = await preprocess({ job: job(file), scoreDate: D, runDir: path.join(dir, 'run') });
      expect(r.stats.rejected.duplicate).toBe(1);
      expect(r.score!.customers).toBe(6000);
      expect((await readSet(r.score!)).rows.every((x) => x.history_length === 2)).toBe(true);
    });
  });

  test('a missing input column names the column, the job field and the columns that exist', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'events.csv');
      await writeEvents(file, [good], COLUMNS);
      const error = await preprocess({ job: smallJob(file, { columns: { eventType: 'event_kind' } }), scoreDate: D, runDir: dir }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InputError);
      const m = (error as Error).message;
      expect(m).toContain('"event_kind"');
      expect(m).toContain('columns.eventType');
      expect(m).toContain('cid, ts, kind, item, cat, price');
    });
  });

  test('an unreadable input file is an InputError naming it', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'broken.parquet');
      await writeFile(file, 'this is not parquet');
      const error = await preprocess({ job: smallJob(file), scoreDate: D, runDir: path.join(dir, 'run') }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InputError);
      expect((error as Error).message).toContain(file);

      const missing = path.join(dir, 'nope.csv');
      const error2 = await preprocess({ job: smallJob(missing), scoreDate: D, runDir: path.join(dir, 'run') }).catch((e: unknown) => e);
      expect(error2).toBeInstanceOf(InputError);
      expect((error2 as Error).message).toContain(missing);
    });
  });
});
