import { DuckDBInstance } from '@duckdb/node-api';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { PublishError } from '../core/errors.js';
import {
  AUDIENCE_MANIFEST,
  exportAudiences,
  exportCsv,
  loadPredictionsIntoDuckDB,
  publishPredictions,
  readPartition,
} from '../coordinator/publish/index.js';
import { csvCells, parseCsv, publishOptions, sampleNight, withTempDir } from './helpers/publish.js';

describe('the prediction table', () => {
  test('ranks, deciles and actions on a known small set', async () => {
    await withTempDir(async (out) => {
      const scores: Record<string, number> = {
        c01: 0.9, c02: 0.55, c03: 0.4, c04: 0.4, c05: 0.39999998, c06: 0.2,
        c07: 0.19, c08: 0.05, c09: 0, c10: 1, c11: 0.3, c12: 0.3,
      };
      const ids = Object.keys(scores);
      await publishPredictions(
        publishOptions(out, [{ product: 'any', customerIds: ids, scores: Float32Array.from(ids, (id) => scores[id]!), modelVersions: ['m1', 'm2'] }], {
          // Given lowest first on purpose: publish orders thresholds itself.
          actions: [
            { name: 'sms', minScore: 0.2 },
            { name: 'in_store', minScore: 0.4 },
          ],
        }),
      );
      const { rows } = (await readPartition(out, 'shop-1', '2017-12-02', 'any'))!;
      expect(rows.map((r) => [r.customer_id, r.rank, r.decile, r.action])).toEqual([
        ['c10', 1, 1, 'in_store'],
        ['c01', 2, 1, 'in_store'],
        ['c02', 3, 2, 'in_store'],
        ['c03', 4, 3, 'in_store'], // exactly on the threshold; tied with c04, first by customer_id
        ['c04', 5, 4, 'in_store'],
        ['c05', 6, 5, 'sms'], // the float32 just below 0.4
        ['c11', 7, 6, 'sms'],
        ['c12', 8, 6, 'sms'],
        ['c06', 9, 7, 'sms'],
        ['c07', 10, 8, 'none'],
        ['c08', 11, 9, 'none'],
        ['c09', 12, 10, 'none'],
      ]);
      expect(rows[0]).toMatchObject({ model_version: 'm1+m2', scored_at: '2017-12-03T02:00:00.000Z', product: 'any' });
      expect(rows.map((r) => r.score)).toEqual(rows.map((r) => Math.fround(scores[r.customer_id]!)));
    });
  });

  test('deciles split the ranks into tenths, 1 being the top', async () => {
    await withTempDir(async (out) => {
      const night = sampleNight({ customers: 1000, products: ['any'], seed: 11 });
      await publishPredictions(publishOptions(out, night));
      const { rows } = (await readPartition(out, 'shop-1', '2017-12-02', 'any'))!;
      const perDecile = new Map<number, number>();
      for (const r of rows) perDecile.set(r.decile, (perDecile.get(r.decile) ?? 0) + 1);
      expect([...perDecile.entries()].sort((a, b) => a[0] - b[0])).toEqual(Array.from({ length: 10 }, (_, d) => [d + 1, 100]));
      for (let i = 1; i < rows.length; i++) {
        expect(rows[i]!.score).toBeLessThanOrEqual(rows[i - 1]!.score);
        expect(rows[i]!.decile).toBeGreaterThanOrEqual(rows[i - 1]!.decile);
      }
    });
  });

  test('the committed partitions load into DuckDB as one table with account and date', async () => {
    await withTempDir(async (out) => {
      const night = sampleNight({ customers: 2000, products: ['any', 'cat-1'], seed: 4 });
      await publishPredictions(publishOptions(out, night));
      const instance = await DuckDBInstance.create(':memory:');
      try {
        const connection = await instance.connect();
        const loaded = await loadPredictionsIntoDuckDB(connection, out, 'shop-1', '2017-12-02', 'predictions "night"');
        expect(loaded.rows).toBe(4000);
        const reader = await connection.runAndReadAll(
          `SELECT product, count(*)::INTEGER, count(DISTINCT customer_id)::INTEGER, sum(score::DOUBLE), min(account), min(date)::VARCHAR
             FROM "predictions ""night""" GROUP BY product ORDER BY product`,
        );
        const expected = night.map((p) => [p.product, 2000, 2000, p.scores.reduce((a, b) => a + b, 0), 'shop-1', '2017-12-02']);
        const actual = reader.getRowsJS();
        expect(actual.map((r) => [r[0], r[1], r[2], r[4], r[5]])).toEqual(expected.map((r) => [r[0], r[1], r[2], r[4], r[5]]));
        actual.forEach((r, i) => expect(r[3] as number).toBeCloseTo(expected[i]![3] as number, 6));
        connection.closeSync();
      } finally {
        instance.closeSync();
      }
    });
  });

  test('the CSV export holds the committed rows, products by name and rows by rank', async () => {
    await withTempDir(async (out) => {
      const night = sampleNight({ customers: 500, products: ['cat-2', 'any'], seed: 6 });
      await publishPredictions(publishOptions(out, night));
      const { file, rows } = await exportCsv({ outDir: out, account: 'shop-1', date: '2017-12-02' });
      expect(rows).toBe(1000);
      const csv = parseCsv(await readFile(file, 'utf8'));
      const committed = [
        ...(await readPartition(out, 'shop-1', '2017-12-02', 'any'))!.rows,
        ...(await readPartition(out, 'shop-1', '2017-12-02', 'cat-2'))!.rows,
      ];
      expect(csv).toHaveLength(committed.length);
      csv.forEach((line, i) => {
        const row = committed[i]!;
        expect([line.customer_id, line.product, Number(line.rank), Number(line.decile), line.action, line.model_version, line.run_id, line.scored_at]).toEqual([
          row.customer_id, row.product, row.rank, row.decile, row.action, row.model_version, row.run_id, row.scored_at,
        ]);
        expect(Math.fround(Number(line.score))).toBe(row.score);
      });
    });
  });

  test('audience files contain exactly the customers whose action matches', async () => {
    await withTempDir(async (out) => {
      const night = sampleNight({ customers: 3000, products: ['any', 'cat-1'], seed: 8 });
      await publishPredictions(publishOptions(out, night));
      const result = await exportAudiences({ outDir: out, account: 'shop-1', date: '2017-12-02' });
      expect(result.audiences.map((a) => `${a.product}/${a.action}`)).toEqual(['any/in_store', 'any/sms', 'cat-1/in_store', 'cat-1/sms']);
      const instance = await DuckDBInstance.create(':memory:');
      const connection = await instance.connect();
      try {
        for (const audience of result.audiences) {
          const { rows } = (await readPartition(out, 'shop-1', '2017-12-02', audience.product))!;
          const expected = rows.filter((r) => r.action === audience.action);
          expect(expected.length).toBeGreaterThan(0);
          expect(audience.rows).toBe(expected.length);
          const csv = parseCsv(await readFile(audience.files.csv!, 'utf8'));
          expect(Object.keys(csv[0]!)).toEqual(['customer_id', 'product', 'score', 'rank', 'action']);
          expect(csv.map((l) => [l.customer_id, Number(l.rank), l.action])).toEqual(expected.map((r) => [r.customer_id, r.rank, r.action]));
          const parquet = await connection.runAndReadAll('SELECT customer_id, rank, score::DOUBLE FROM read_parquet($f) ORDER BY rank', {
            f: audience.files.parquet!,
          });
          expect(parquet.getRowsJS()).toEqual(expected.map((r) => [r.customer_id, r.rank, r.score]));
        }
      } finally {
        connection.closeSync();
        instance.closeSync();
      }
      const manifest = JSON.parse(await readFile(path.join(result.dir, AUDIENCE_MANIFEST), 'utf8'));
      expect(manifest.sources.map((s: { runId: string }) => s.runId)).toEqual(['shop-1-20171202-abc', 'shop-1-20171202-abc']);
    });
  });

  test('an action nobody reaches still gets its (empty) audience, and a rerun replaces the old audiences whole', async () => {
    await withTempDir(async (out) => {
      const night = sampleNight({ customers: 200, products: ['any'], seed: 9 });
      await publishPredictions(publishOptions(out, night, { actions: [{ name: 'vip', minScore: 1 }, { name: 'sms', minScore: 0.2 }] }));
      const first = await exportAudiences({ outDir: out, account: 'shop-1', date: '2017-12-02', formats: ['csv'] });
      const vip = first.audiences.find((a) => a.action === 'vip')!;
      expect(vip.rows).toBe(0);
      expect(csvCells(await readFile(vip.files.csv!, 'utf8')).map((row) => row.map((c) => c.value))).toEqual([['customer_id', 'product', 'score', 'rank', 'action']]);

      await publishPredictions(publishOptions(out, night, { actions: [{ name: 'email', minScore: 0.5 }] }));
      const second = await exportAudiences({ outDir: out, account: 'shop-1', date: '2017-12-02', formats: ['csv'] });
      expect(second.audiences.map((a) => a.action)).toEqual(['email']);
      await expect(readFile(vip.files.csv!, 'utf8')).rejects.toThrow(/ENOENT/);
    });
  });

  test('exports and loads refuse a date that was never committed', async () => {
    await withTempDir(async (out) => {
      await expect(exportCsv({ outDir: out, account: 'shop-1', date: '2017-12-02' })).rejects.toThrow(PublishError);
      await expect(exportAudiences({ outDir: out, account: 'shop-1', date: '2017-12-02' })).rejects.toThrow(/run publish for that date first/);
    });
  });
});
