import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { PublishError, SecurityError } from '../core/errors.js';
import {
  CRASH_POINTS,
  committedPartitions,
  MANIFEST_NAME,
  partitionDir,
  publishPredictions,
  readPartition,
  stagingDir,
} from '../coordinator/publish/index.js';
import { publishOptions, sampleNight, shuffled, snapshotTree, withTempDir } from './helpers/publish.js';

const PRODUCTS = ['any', 'cat-4756105'];

describe('publish commits each partition exactly once', () => {
  test.each(['before-data', 'after-temp-data', 'after-data', 'before-manifest'])(
    'a crash at %s leaves the previous partition readable and whole, and the next commit clears the garbage',
    async (crashAt) => {
      await withTempDir(async (out) => {
        const first = sampleNight({ customers: 400, products: PRODUCTS, seed: 1 });
        await publishPredictions(publishOptions(out, first, { runId: 'run-1' }));
        // The night before, in its own partition, must not be touched either.
        await publishPredictions(publishOptions(out, first, { runId: 'run-0', date: '2017-12-01' }));
        const before = await readPartition(out, 'shop-1', '2017-12-02', 'any');
        const previousNight = await snapshotTree(path.join(out, 'predictions', 'account=shop-1', 'date=2017-12-01'));

        const rerun = sampleNight({ customers: 450, products: PRODUCTS, seed: 2, version: 'v2' });
        await expect(publishPredictions(publishOptions(out, rerun, { runId: 'run-2', crashAt }))).rejects.toThrow(/simulated crash/);

        const after = await readPartition(out, 'shop-1', '2017-12-02', 'any');
        expect(after!.manifest.runId).toBe('run-1');
        expect(after!.rows).toEqual(before!.rows);
        expect((await committedPartitions(out, 'shop-1', '2017-12-02')).map((p) => p.manifest.runId)).toEqual(['run-1', 'run-1']);
        expect(await snapshotTree(path.join(out, 'predictions', 'account=shop-1', 'date=2017-12-01'))).toEqual(previousNight);

        await publishPredictions(publishOptions(out, rerun, { runId: 'run-2' }));
        const committed = await readPartition(out, 'shop-1', '2017-12-02', 'any');
        expect(committed!.manifest.runId).toBe('run-2');
        expect(committed!.rows).toHaveLength(450);
        const dir = partitionDir(out, 'shop-1', '2017-12-02', 'any');
        expect((await readdir(dir)).sort()).toEqual([MANIFEST_NAME, committed!.manifest.files[0]!.name].sort());
      });
    },
  );

  test('a crash right after the commit leaves the new partition whole; the old one, set aside outside the table, goes at the next commit', async () => {
    await withTempDir(async (out) => {
      await publishPredictions(publishOptions(out, sampleNight({ customers: 300, products: ['any'], seed: 1 }), { runId: 'run-1' }));
      const rerun = sampleNight({ customers: 300, products: ['any'], seed: 2 });
      await expect(publishPredictions(publishOptions(out, rerun, { runId: 'run-2', crashAt: 'after-manifest' }))).rejects.toThrow(
        PublishError,
      );
      const dir = partitionDir(out, 'shop-1', '2017-12-02', 'any');
      expect(await readdir(dir)).toHaveLength(2); // new manifest, new data: the old folder waits in the staging area
      expect((await readdir(stagingDir(out, 'shop-1', '2017-12-02'))).filter((e) => e.startsWith('replaced-'))).toHaveLength(1);
      const read = await readPartition(out, 'shop-1', '2017-12-02', 'any');
      expect(read!.manifest.runId).toBe('run-2');
      expect(read!.rows.map((r) => r.score)).toEqual(sortedScores(rerun[0]!.scores));

      await publishPredictions(publishOptions(out, rerun, { runId: 'run-2' }));
      expect(await readdir(dir)).toHaveLength(2);
      await expect(readdir(stagingDir(out, 'shop-1', '2017-12-02'))).rejects.toThrow(/ENOENT/);
    });
  });

  test('a crash between two products leaves each partition whole: the first new, the second old', async () => {
    await withTempDir(async (out) => {
      await publishPredictions(publishOptions(out, sampleNight({ customers: 200, products: PRODUCTS, seed: 1 }), { runId: 'run-1' }));
      const rerun = sampleNight({ customers: 200, products: PRODUCTS, seed: 2 });
      await expect(
        publishPredictions(publishOptions(out, rerun, { runId: 'run-2', crashAt: `before-manifest@${PRODUCTS[1]}` })),
      ).rejects.toThrow(PublishError);
      const partitions = await committedPartitions(out, 'shop-1', '2017-12-02');
      expect(partitions.map((p) => [p.product, p.manifest.runId])).toEqual([
        ['any', 'run-2'],
        ['cat-4756105', 'run-1'],
      ]);
    });
  });

  test('a rerun on the same inputs gives byte-identical files, whatever the row order, list sharing or thread count', async () => {
    await withTempDir(async (out) => {
      const night = sampleNight({ customers: 5000, products: PRODUCTS, seed: 7 });
      const a = path.join(out, 'a');
      const b = path.join(out, 'b');
      const c = path.join(out, 'c');
      await publishPredictions(publishOptions(a, night, { threads: 1 }));
      const first = await snapshotTree(a);
      await publishPredictions(publishOptions(a, night, { threads: 2 }));
      await publishPredictions(publishOptions(b, shuffled(night, 99), { threads: 2 }));
      // Products that share one customer list are loaded together: same bytes.
      await publishPredictions(publishOptions(c, night.map((p) => ({ ...p, customerIds: night[0]!.customerIds }))));
      expect(Object.keys(first)).toHaveLength(4); // two partitions: manifest + one data file each
      expect(await snapshotTree(a)).toEqual(first);
      expect(await snapshotTree(b)).toEqual(first);
      expect(await snapshotTree(c)).toEqual(first);
    });
  });

  test('every customer appears exactly once per product, ranked 1..n', async () => {
    await withTempDir(async (out) => {
      const night = sampleNight({ customers: 3000, products: PRODUCTS, seed: 3 });
      await publishPredictions(publishOptions(out, night));
      for (const p of night) {
        const { rows, manifest } = (await readPartition(out, 'shop-1', '2017-12-02', p.product))!;
        const ids = rows.map((r) => r.customer_id);
        expect(new Set(ids).size).toBe(ids.length);
        expect([...ids].sort()).toEqual([...p.customerIds].sort());
        expect(rows.map((r) => r.rank)).toEqual(ids.map((_, i) => i + 1));
        expect(manifest.rowCount).toBe(p.customerIds.length);
        expect(rows.every((r) => r.product === p.product && r.run_id === 'shop-1-20171202-abc')).toBe(true);
      }
    });
  });

  test('two scores for one customer are refused before anything is committed', async () => {
    await withTempDir(async (out) => {
      const [p] = sampleNight({ customers: 10, products: ['any'], seed: 1 });
      p!.customerIds[3] = p!.customerIds[4]!;
      await expect(publishPredictions(publishOptions(out, [p!]))).rejects.toThrow(/more than one score/);
      expect(await committedPartitions(out, 'shop-1', '2017-12-02')).toEqual([]);
    });
  });

  test('products that do not score the same customers are refused', async () => {
    await withTempDir(async (out) => {
      const [a, b] = sampleNight({ customers: 20, products: ['any', 'cat-1'], seed: 1 });
      b!.customerIds[7] = 'someone-else';
      await expect(publishPredictions(publishOptions(out, [a!, b!]))).rejects.toThrow(/"cust-000007" is missing/);
      const shorter = { ...b!, customerIds: a!.customerIds.slice(1), scores: b!.scores.slice(1) };
      await expect(publishPredictions(publishOptions(out, [a!, shorter]))).rejects.toThrow(/20 and 19 customers/);
      expect(await committedPartitions(out, 'shop-1', '2017-12-02')).toEqual([]);
    });
  });

  test('a rerun replaces the date whole: products the rerun lacks are removed', async () => {
    await withTempDir(async (out) => {
      await publishPredictions(publishOptions(out, sampleNight({ customers: 50, products: ['any', 'cat-1', 'cat-2'], seed: 1 })));
      const result = await publishPredictions(publishOptions(out, sampleNight({ customers: 50, products: ['any', 'cat-2'], seed: 2 })));
      expect(result.removedProducts).toEqual(['cat-1']);
      expect((await committedPartitions(out, 'shop-1', '2017-12-02')).map((p) => p.product)).toEqual(['any', 'cat-2']);
    });
  });

  test('the manifest records rows, checksums, model versions, ensemble, input window, run id, actions and schema', async () => {
    await withTempDir(async (out) => {
      const night = sampleNight({ customers: 100, products: ['any'], seed: 5 });
      const ensemble = { method: 'fitted' as const, requested: 'fitted' as const, models: ['lstm', 'attention'], weights: [0.8, 0.3], bias: -1.2, fittedOn: { rows: 90, positives: 12 } };
      await publishPredictions(publishOptions(out, [{ ...night[0]!, ensemble }]));
      const [partition] = await committedPartitions(out, 'shop-1', '2017-12-02');
      const m = partition!.manifest;
      expect(m.ensemble).toEqual(ensemble);
      expect(m).toMatchObject({
        account: 'shop-1',
        date: '2017-12-02',
        product: 'any',
        runId: 'shop-1-20171202-abc',
        rowCount: 100,
        modelVersions: night[0]!.modelVersions,
        inputWindow: { from: '2017-11-02', to: '2017-12-02' },
        scoredAt: '2017-12-03T02:00:00.000Z',
      });
      expect(m.files[0]!.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(m.schema.map((c) => c.name)).toEqual([
        'customer_id', 'product', 'score', 'rank', 'decile', 'action', 'model_version', 'run_id', 'scored_at',
      ]);
      expect(Object.values(m.actionCounts).reduce((a, b) => a + b, 0)).toBe(100);
    });
  });

  test('readers refuse a partition whose data no longer matches its manifest', async () => {
    await withTempDir(async (out) => {
      await publishPredictions(publishOptions(out, sampleNight({ customers: 100, products: ['any'], seed: 5 })));
      const [partition] = await committedPartitions(out, 'shop-1', '2017-12-02');
      const bytes = await readFile(partition!.files[0]!);
      const middle = Math.floor(bytes.length / 2);
      bytes[middle] = bytes[middle]! ^ 0xff;
      await writeFile(partition!.files[0]!, bytes);
      await expect(readPartition(out, 'shop-1', '2017-12-02', 'any')).rejects.toThrow(/checksum/);
    });
  });

  test.each([
    ['account', { account: '../etc' }],
    ['account', { account: '.hidden' }],
    ['date', { date: '2017-13-01' }],
    ['date', { date: '2017-12-02/../../x' }],
    ['action', { actions: [{ name: 'in store/all', minScore: 0.5 }] }],
  ])('an unsafe %s is refused as a SecurityError', async (_what, overrides) => {
    await withTempDir(async (out) => {
      const night = sampleNight({ customers: 5, products: ['any'], seed: 1 });
      await expect(publishPredictions(publishOptions(out, night, overrides))).rejects.toThrow(SecurityError);
      expect(await readdir(out)).toEqual([]);
    });
  });

  test('a product name that looks like a path is published under an encoded folder, and unknown crash points are refused', async () => {
    await withTempDir(async (out) => {
      const [p] = sampleNight({ customers: 5, products: ['any'], seed: 1 });
      const result = await publishPredictions(publishOptions(out, [{ ...p!, product: 'a/../../b' }]));
      expect(path.basename(result.partitions[0]!.dir)).toBe('product=a%2F..%2F..%2Fb');
      expect((await readPartition(out, 'shop-1', '2017-12-02', 'a/../../b'))!.rows.map((r) => r.product)).toEqual(Array(5).fill('a/../../b'));
      expect(await readPartition(out, 'shop-1', '2017-12-02', '..')).toBeNull();
      expect((await committedPartitions(out, 'shop-1', '2017-12-02')).map((c) => c.product)).toEqual(['a/../../b']);
      await expect(publishPredictions(publishOptions(out, [p!], { crashAt: 'halfway' }))).rejects.toThrow(CRASH_POINTS.join(', '));
    });
  });
});

function sortedScores(scores: Float32Array): number[] {
  return [...scores].sort((a, b) => b - a);
}
