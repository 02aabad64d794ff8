import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { mulberry32 } from '../core/random.js';
import { InputError } from '../core/errors.js';
import { preprocess, type PreprocessResult } from '../coordinator/preprocess/index.js';
import type { Job } from '../jobs/job.js';
import { duck, readSet, smallJob, withTempDir, writeEvents, type EventRow } from './helpers/preprocess.js';

const D = '2024-03-10'; // train as-of 03-08; the job needs [03-05, 03-12)

/** Deterministic events inside the window: 6 customers, 2024-03-05 .. 2024-03-11. */
function sampleRows(): EventRow[] {
  const next = mulberry32(12345);
  const rows: EventRow[] = [];
  for (let i = 0; i < 120; i++) {
    const ms = Date.UTC(2024, 2, 5) + Math.floor(next() * 7 * 86_400) * 1000;
    const kind = next() < 0.15 ? 'buy' : next() < 0.2 ? 'cart' : 'view';
    rows.push({ cid: `u${Math.floor(next() * 6)}`, ts: ms, kind, item: `i${Math.floor(next() * 10)}`, cat: `c${Math.floor(next() * 3)}` });
  }
  return rows;
}

const asSeconds = (rows: EventRow[]) => rows.map((r) => ({ ...r, ts: Number(r.ts) / 1000 }));
const asIso = (rows: EventRow[]) => rows.map((r) => ({ ...r, ts: new Date(Number(r.ts)).toISOString() }));
const asIsoOffset = (rows: EventRow[]) =>
  rows.map((r) => ({ ...r, ts: new Date(Number(r.ts) + 2 * 3_600_000).toISOString().replace('Z', '+02:00') }));
const asNoOffset = (rows: EventRow[]) => asIso(rows).map((r) => ({ ...r, ts: String(r.ts).replace('T', ' ').replace('Z', '') }));
const dayOf = (r: EventRow) => new Date(Number(r.ts)).toISOString().slice(0, 10);

async function run(dir: string, name: string, job: Job): Promise<PreprocessResult> {
  return preprocess({ job, scoreDate: D, runDir: path.join(dir, `run-${name}`) });
}

/** What a run produced, independent of where its files are. */
async function content(r: PreprocessResult) {
  const sets = {} as Record<string, unknown>;
  for (const s of ['train', 'score'] as const) {
    const { rows } = await readSet(r[s]!);
    sets[s] = { ...r[s]!, shards: r[s]!.shards.map((x) => x.rows), rows: rows.sort((a, b) => a.customer_id.localeCompare(b.customer_id)) };
  }
  return { sets, vocabulary: r.vocabulary, products: r.products, rejected: r.stats.rejected };
}

describe('input formats and layouts', () => {
  test('one CSV, one Parquet, a folder, a glob and Hive partitions give the same shards', async () => {
    await withTempDir(async (dir) => {
      const rows = asSeconds(sampleRows());
      await writeEvents(path.join(dir, 'one.csv'), rows);
      await writeEvents(path.join(dir, 'one.parquet'), rows);
      await mkdir(path.join(dir, 'folder', 'nested'), { recursive: true });
      await writeEvents(path.join(dir, 'folder', 'a.csv'), rows.slice(0, 50));
      await writeEvents(path.join(dir, 'folder', 'nested', 'b.csv'), rows.slice(50));
      await mkdir(path.join(dir, 'globbed'));
      await writeEvents(path.join(dir, 'globbed', 'part-1.parquet'), rows.slice(0, 70));
      await writeEvents(path.join(dir, 'globbed', 'part-2.parquet'), rows.slice(70));
      const hive = path.join(dir, 'hive');
      const days = [...new Set(rows.map((r) => dayOf({ ...r, ts: Number(r.ts) * 1000 })))];
      for (const day of days) {
        await mkdir(path.join(hive, `date=${day}`), { recursive: true });
        await writeEvents(path.join(hive, `date=${day}`, 'part.parquet'), rows.filter((r) => dayOf({ ...r, ts: Number(r.ts) * 1000 }) === day));
      }

      const base = await run(dir, 'csv', smallJob(path.join(dir, 'one.csv')));
      expect(base.score!.customers).toBe(6);
      expect(base.stats.inputFiles).toBe(1);
      const want = await content(base);
      const variants: [string, Job, number][] = [
        ['parquet', smallJob(path.join(dir, 'one.parquet')), 1],
        ['folder', smallJob(path.join(dir, 'folder'), { input: { format: 'csv' } }), 2],
        ['glob', smallJob(path.join(dir, 'globbed', '*.parquet')), 2],
        ['hive', smallJob(hive, { input: { format: 'parquet' } }), days.length],
      ];
      for (const [name, job, files] of variants) {
        const r = await run(dir, name, job);
        expect(r.stats.inputFiles, name).toBe(files);
        expect(r.stats.rowsRead, name).toBe(rows.length);
        expect(await content(r), name).toEqual(want);
      }
    });
  });

  test('Hive partitions outside the window are never read: a corrupt one there is harmless, inside it fails', async () => {
    await withTempDir(async (dir) => {
      const rows = asSeconds(sampleRows());
      const hive = path.join(dir, 'hive');
      await mkdir(path.join(hive, 'date=2024-03-07'), { recursive: true });
      await writeEvents(path.join(hive, 'date=2024-03-07', 'part.parquet'), rows);
      // Valid rows of an old day: a flat read would count them, a pruned read never sees them.
      await mkdir(path.join(hive, 'date=2024-02-01'), { recursive: true });
      await writeEvents(path.join(hive, 'date=2024-02-01', 'part.parquet'), [{ cid: 'old', ts: Date.UTC(2024, 1, 1) / 1000, kind: 'view', item: 'i1', cat: 'c1' }]);
      await mkdir(path.join(hive, 'date=2023-01-01'), { recursive: true });
      await writeFile(path.join(hive, 'date=2023-01-01', 'part.parquet'), 'not a parquet file');
      await mkdir(path.join(hive, 'date=2024-03-20'), { recursive: true });
      await writeFile(path.join(hive, 'date=2024-03-20', 'part.parquet'), 'not a parquet file either');

      const r = await run(dir, 'pruned', smallJob(hive, { input: { format: 'parquet' } }));
      expect(r.stats.inputFiles).toBe(1);
      expect(r.stats.rowsRead).toBe(rows.length);
      expect(r.stats.outsideWindow).toBe(0);

      const broken = path.join(hive, 'date=2024-03-08', 'part.parquet');
      await mkdir(path.dirname(broken));
      await writeFile(broken, 'corrupt, and inside the window');
      const error = await run(dir, 'broken', smallJob(hive, { input: { format: 'parquet' } })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InputError);
      expect((error as Error).message).toContain(broken);
    });
  });

  test('epoch seconds, epoch millis and ISO strings (any offset) read as the same instants', async () => {
    await withTempDir(async (dir) => {
      const rows = sampleRows();
      const files: [string, EventRow[], Job['input']['timeFormat']][] = [
        ['seconds-auto', asSeconds(rows), 'auto'],
        ['millis-auto', rows, 'auto'],
        ['iso-auto', asIso(rows), 'auto'],
        ['offset-auto', asIsoOffset(rows), 'auto'],
        ['no-offset-auto', asNoOffset(rows), 'auto'],
        ['seconds', asSeconds(rows), 'epoch_seconds'],
        ['millis', rows, 'epoch_millis'],
        ['iso', asIsoOffset(rows), 'iso'],
      ];
      let want: unknown = null;
      for (const [name, data, timeFormat] of files) {
        const file = path.join(dir, `${name}.csv`);
        await writeEvents(file, data);
        const r = await run(dir, name, smallJob(file, { input: { timeFormat } }));
        expect(r.stats.rejected.bad_time, name).toBe(0);
        const got = await content(r);
        if (want === null) want = got;
        else expect(got, name).toEqual(want);
      }
      // Typed Parquet columns too: TIMESTAMP, and BIGINT seconds or millis told apart by 'auto'.
      const typed: [string, string][] = [
        ['iso-auto.csv', 'ts::TIMESTAMPTZ'],
        ['seconds-auto.csv', 'ts::BIGINT'],
        ['millis-auto.csv', 'ts::BIGINT'],
      ];
      for (const [source, cast] of typed) {
        const file = path.join(dir, `typed-${source}.parquet`);
        await duck(`COPY (SELECT cid, ${cast} AS ts, kind, item, cat FROM read_csv('${path.join(dir, source)}', all_varchar = true)) TO '${file}'`);
        expect(await content(await run(dir, `typed-${source}`, smallJob(file))), source).toEqual(want);
      }
    });
  });

  test('a time format that does not match the data rejects the rows as bad_time', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'iso.csv');
      await writeEvents(file, asIso(sampleRows()));
      const error = await run(dir, 'mismatch', smallJob(file, { input: { timeFormat: 'epoch_seconds' } })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InputError);
      expect((error as Error).message).toContain('bad_time 120');
    });
  });

  test('times without an offset read as UTC on a machine in another time zone (a real process with TZ set)', async () => {
    await withTempDir(async (dir) => {
      // Parquet with text times: read through a view, so the times are parsed on every connection that reads it.
      const file = path.join(dir, 'local.parquet');
      await writeEvents(file, asNoOffset(sampleRows()));
      const here = await content(await run(dir, 'here', smallJob(file)));
      const child = spawnSync(process.execPath, ['--import', 'tsx', path.resolve('test/helpers/preprocess-child.ts'), file, path.join(dir, 'run-elsewhere'), D], {
        env: { ...process.env, TZ: 'America/New_York' },
        encoding: 'utf8',
      });
      expect(child.stderr).not.toMatch(/Error/);
      const elsewhere = JSON.parse(child.stdout) as { stats: { rowsRead: number }; zone: string };
      expect(elsewhere.zone).toBe('America/New_York');
      expect(elsewhere.stats.rowsRead).toBe(120);
      expect(await content(elsewhere as unknown as PreprocessResult)).toEqual(here);
    });
  });
});
