import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { preprocess, type PreprocessResult } from '../coordinator/preprocess/index.js';
import { planSet } from '../coordinator/preprocess/sets.js';
import { ShardPool } from '../coordinator/preprocess/shard-pool.js';
import { jobAggregateLayout } from '../coordinator/features/index.js';
import { DAY_MS } from '../jobs/job.js';
import { duck, smallJob, taobaoJob, withTempDir, writeEvents, type EventRow } from './helpers/preprocess.js';

/** Every file under a set folder, name → sha256. */
async function setDigests(r: PreprocessResult, set: 'train' | 'score'): Promise<Record<string, string>> {
  const dir = path.dirname(r[set]!.shards[0]!.file);
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    out[path.relative(dir, file)] = createHash('sha256').update(await readFile(file)).digest('hex');
  }
  return out;
}

describe('the sequence pass in parallel', () => {
  test('the Taobao sample on 1, 2 and 3 threads: the same shard files, byte for byte', async () => {
    await withTempDir(async (dir) => {
      const results: PreprocessResult[] = [];
      for (const threads of [1, 2, 3]) {
        const job = taobaoJob({ shards: { count: 5, batchRows: 64 }, resources: { memoryLimit: '1GB', threads } });
        const r = await preprocess({ job, scoreDate: '2017-12-02', runDir: path.join(dir, `t${threads}`), parallelFromEvents: 0 });
        expect(r.stats.sequenceThreads).toBe(threads);
        results.push(r);
      }
      const [one, ...more] = results;
      for (const set of ['train', 'score'] as const) {
        const digests = await setDigests(one!, set);
        expect(Object.keys(digests).filter((f) => f.endsWith('.arrow'))).toHaveLength(5);
                for (const r of more) {
          expect(await setDigests(r, set)).toEqual(digests);
          expect(r[set]!.customers).toBe(one![set]!.customers);
          expect(r[set]!.positives).toEqual(one![set]!.positives);
        }
      }
      expect(one!.score!.customers).toBeGreaterThan(800);
    });
  });

  test('duplicates found on worker threads reach the quarantine as on one thread', async () => {
    await withTempDir(async (dir) => {
      const rows: EventRow[] = [];
      for (let c = 0; c < 60; c++) {
        const ts = new Date(Date.UTC(2024, 2, 8, c % 24)).toISOString();
        rows.push({ cid: `c${c}`, ts, kind: 'view', item: `i${c % 7}`, cat: 'x' });
        if (c % 5 === 0) rows.push({ cid: `c${c}`, ts, kind: 'view', item: `i${c % 7}`, cat: 'x' }); // an exact duplicate
      }
      const file = path.join(dir, 'events.csv');
      await writeEvents(file, rows);
      const quarantines: unknown[] = [];
      for (const threads of [1, 2]) {
        const job = smallJob(file, { shards: { count: 4, batchRows: 4 }, resources: { memoryLimit: '1GB', threads } });
        const r = await preprocess({ job, scoreDate: '2024-03-10', runDir: path.join(dir, `t${threads}`), parallelFromEvents: 0 });
        expect(r.stats.sequenceThreads).toBe(threads);
        expect(r.stats.rejected.duplicate).toBe(12);
        quarantines.push(await duck(`SELECT * FROM '${r.stats.quarantineFile}' ORDER BY ALL`));
      }
      expect(quarantines[1]).toEqual(quarantines[0]);
      expect(quarantines[0]).toHaveLength(12);
    });
  });
});

test('below parallelFromEvents the pass stays on one thread, and never more threads than shards', async () => {
  await withTempDir(async (dir) => {
    const small = await preprocess({ job: taobaoJob({ resources: { memoryLimit: '1GB', threads: 2 } }), scoreDate: '2017-12-02', runDir: path.join(dir, 'small') });
    expect(small.stats.sequenceThreads).toBe(1);
    const capped = await preprocess({
      job: taobaoJob({ shards: { count: 2, batchRows: 64 }, resources: { memoryLimit: '1GB', threads: 4 } }),
      scoreDate: '2017-12-02',
      runDir: path.join(dir, 'capped'),
      parallelFromEvents: 0,
    });
    expect(capped.stats.sequenceThreads).toBe(2);
  });
});

/** A 4-shard pass of the score set over `shard=<s>/data_0.parquet` files that the caller writes under its inputDir. */
async function fourShardPass(runDir: string) {
  const job = taobaoJob({ shards: { count: 4, batchRows: 64 } });
  const asOfMs = Date.UTC(2017, 11, 2);
  const window = { name: 'score' as const, asOf: '2017-12-02', asOfMs, featureFromMs: asOfMs - 7 * DAY_MS, labelToMs: asOfMs + 2 * DAY_MS };
  const aggregates = jobAggregateLayout(job);
  const set = await planSet({ job, window, labelled: false, products: [{ name: 'any', category: null }], aggregates, tokenColumns: ['event'], runDir });
  const inputDir = path.join(runDir, 'sequence-input');
  const plan = { job, inputDir, customerType: 'BIGINT' as const, numericCount: 0, sets: [set], itemIds: null, categoryIds: null, eventIds: Int32Array.of(2, 3, 4, 5), productCategories: [null], aggregates };
  const shardFile = async (s: number) => {
    const file = path.join(inputDir, `shard=${s}`, 'data_0.parquet');
    await mkdir(path.dirname(file), { recursive: true });
    return file;
  };
  const start = () => ShardPool.start(plan, 4, { threads: 2, duckdb: { memoryLimit: '256MB', tempDirectory: path.join(runDir, 'tmp') } });
  return { asOfMs, shardFile, start };
}

test('a shard that fails on a worker thread fails the pass with its reason, and every thread ends', async () => {
  await withTempDir(async (dir) => {
    const pass = await fourShardPass(dir);
    for (let s = 0; s < 4; s++) await writeFile(await pass.shardFile(s), 'not a parquet file'); // a disk that returns garbage
    await expect(pass.start().run(4)).rejects.toThrow(/parquet/i);
  });
});

test('one broken shard among good ones fails the pass whichever thread takes it, and the other thread stops', async () => {
  await withTempDir(async (dir) => {
    for (const broken of [0, 3]) {
      const pass = await fourShardPass(path.join(dir, `broken-${broken}`));
      for (let s = 0; s < 4; s++) {
        const file = await pass.shardFile(s);
        if (s === broken) await writeFile(file, 'not a parquet file');
        else await duck(`COPY (SELECT ${s}::BIGINT AS customer, ${pass.asOfMs - DAY_MS}::DOUBLE AS ts, 0::UTINYINT AS e, 0::UBIGINT AS hi, 0::UBIGINT AS hc, 0::UBIGINT AS k) TO '${file}' (FORMAT parquet)`);
      }
      await expect(pass.start().run(4)).rejects.toThrow(/parquet/i);
    }
  });
});
