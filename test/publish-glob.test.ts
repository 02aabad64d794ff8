/**
 * Glob readers never see two versions: at every publish kill point, reading the table the way DuckDB,
 * Spark and external tables do (a glob of the Parquet files with hive partitioning) gives exactly the rows
 * that reading through the manifests gives.
 */
import { describe, expect, test } from 'vitest';
import { CRASH_POINTS, committedPartitions, publishPredictions } from '../coordinator/publish/index.js';
import { COMMITTED_FILES, filesList } from '../coordinator/publish/read.js';
import { withDuckDB } from '../coordinator/publish/duckdb.js';
import { publishOptions, sampleNight, withTempDir } from './helpers/publish.js';

const PRODUCTS = ['any', 'cat-1', 'cat-2'];
type Row = [string, string, number, string];

async function globRows(out: string): Promise<Row[]> {
  return withDuckDB({}, async (c) => {
    const files = await c.runAndReadAll(`SELECT count(*) FROM glob($g)`, { g: `${out}/predictions/**/*.parquet` });
    if (Number(files.getRows()[0]![0]) === 0) return [];
    const r = await c.runAndReadAll(
      `SELECT customer_id, product, CAST(score AS DOUBLE), run_id FROM read_parquet($g, hive_partitioning = true) ORDER BY ALL`,
      { g: `${out}/predictions/**/*.parquet` },
    );
    return r.getRowsJS() as Row[];
  });
}

async function manifestRows(out: string): Promise<Row[]> {
  const files = (await committedPartitions(out, 'shop-1', '2017-12-02')).flatMap((p) => p.files);
  if (files.length === 0) return [];
  return withDuckDB({}, async (c) => {
    const r = await c.runAndReadAll(`SELECT customer_id, product, CAST(score AS DOUBLE), run_id FROM ${COMMITTED_FILES} ORDER BY ALL`, { files: filesList(files) });
    return r.getRowsJS() as Row[];
  });
}

describe('a glob read and a manifest read agree at every kill point', () => {
  const points = CRASH_POINTS.flatMap((p) => (p === 'before-remove-stale' ? [p] : [p, `${p}@cat-1`]));
  test.each(points)('killed at %s, over an earlier publish of the date', async (crashAt) => {
    await withTempDir(async (out) => {
      // The earlier run had one more product, which the rerun removes.
      await publishPredictions(publishOptions(out, sampleNight({ customers: 120, products: [...PRODUCTS, 'cat-3'], seed: 1 }), { runId: 'run-1' }));
      const rerun = sampleNight({ customers: 150, products: PRODUCTS, seed: 2, version: 'v2' });
      await expect(publishPredictions(publishOptions(out, rerun, { runId: 'run-2', crashAt }))).rejects.toThrow(/simulated crash/);

      const byManifest = await manifestRows(out);
      expect(byManifest.length).toBeGreaterThan(0);
      expect(await globRows(out)).toEqual(byManifest);
    });
  });

  test.each(CRASH_POINTS.filter((p) => p !== 'before-remove-stale'))('killed at %s on the first publish of the date', async (crashAt) => {
    await withTempDir(async (out) => {
      const night = sampleNight({ customers: 100, products: PRODUCTS, seed: 3 });
      await expect(publishPredictions(publishOptions(out, night, { runId: 'run-1', crashAt }))).rejects.toThrow(/simulated crash/);
      expect(await globRows(out)).toEqual(await manifestRows(out));
    });
  });
});
