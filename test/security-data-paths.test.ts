/**
 * Names from data never become paths unchecked: category values chosen as products (topCategories) name
 * checkpoint, model, partition and audience folders only through core/path-component.ts. A whole run of
 * the real CLI over categories that climb (`../..`, `/`, `\`), are very long, or hold control characters
 * and odd Unicode writes nothing outside its output folder and publishes every product once per customer,
 * under its original name in the rows and the manifest.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { committedPartitions, readPartition } from '../coordinator/publish/index.js';
import { isPathComponent, pathComponent } from '../core/path-component.js';
import { loadJob } from '../jobs/job-file.js';
import { runCli, type CliResult } from './helpers/cli.js';
import { duck } from './helpers/preprocess.js';
import { TINY_DATE, tinyJob, walkTree, writeTinyRun } from './helpers/tiny-run.js';

describe('pathComponent', () => {
  test.each([
    ['any', 'any'],
    ['4756105', '4756105'],
    ['in_store', 'in_store'],
    ['a.b-c_d', 'a.b-c_d'],
    ['..', '%2E.'],
    ['.hidden', '%2Ehidden'],
    ['a/../b', 'a%2F..%2Fb'],
    ['a\\b', 'a%5Cb'],
    ['50%', '50%25'],
    ['x~y', 'x%7Ey'],
    ['café', 'caf%C3%A9'],
    ['tab\there', 'tab%09here'],
    ['=cmd', '%3Dcmd'],
  ])('%j → %s, which percent-decoding maps back', (name, folder) => {
    expect(pathComponent(name)).toBe(folder);
    expect(decodeURIComponent(folder)).toBe(name);
  });

  test('names too long to be a folder, the empty name and lone surrogates get a shortened name and a hash', () => {
    const long = 'L'.repeat(300);
    for (const name of [long, `${long}x`, 'é'.repeat(200), '', 'a\uD800b', 'a\uDC00b']) {
      const c = pathComponent(name);
      expect(c).toMatch(/~[0-9a-f]{16}$/);
      expect(c.length).toBeLessThanOrEqual(128);
      expect(isPathComponent(c)).toBe(true);
      expect(() => decodeURIComponent(c)).not.toThrow(); // whole characters only
    }
    expect(pathComponent(long)).not.toBe(pathComponent(`${long}x`));
    expect(pathComponent('a\uD800b')).not.toBe(pathComponent('a\uDC00b'));
  });

  test('distinct names give distinct components, and every component is a plain folder name', () => {
    const names = ['a/b', 'a%2Fb', 'a%252Fb', '.', '%2E', '..', '%2E.', 'A', 'a', '', ' ', '~', 'x~0123456789abcdef'];
    const components = names.map(pathComponent);
    expect(new Set(components).size).toBe(names.length);
    for (const c of components) {
      expect(isPathComponent(c)).toBe(true);
      expect(c).not.toMatch(/[/\\\x00-\x1f]/);
      expect(['.', '..']).not.toContain(c);
    }
  });
});

describe('a whole run over hostile category values', () => {
  let dir: string;
  let escapeTarget: string;
  let categories: string[];
  let run: CliResult;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-paths-'));
    escapeTarget = path.join(dir, 'elsewhere');
    categories = [
      `x/${'../'.repeat(24)}${escapeTarget.slice(1)}`, // the attack of issue #22: climbs to / and back down to `elsewhere`
      '../../../../escaped',
      '/etc/cron.d',
      'a\\..\\..\\b',
      '..',
      '.',
      'a/b',
      'a%2Fb', // decodes to the previous one's folder name: must not share it
      'L'.repeat(310),
      'café ☕ 🛒 \u202Eevil',
      'tab\there\x01\x07\x1b[31m',
      'line\nbreak\r',
      '\uFFFD\u200B odd',
      ' ',
    ];
    const conf = await writeTinyRun(dir, { categories }, tinyJob(categories.length));
    run = await runCli(['run', '--account', 'acme', '--date', TINY_DATE, '--conf', conf]);
  }, 120_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('the run succeeds and writes nothing outside its output folder', async () => {
    expect(run.stderr.split('\n').filter((l) => l.startsWith('nextbuy:'))).toEqual([]);
    expect(run.code).toBe(0);
    const outside = (await walkTree(dir)).filter((e) => e.path !== 'out' && !e.path.startsWith(`out${path.sep}`));
    expect(outside.map((e) => e.path)).toEqual(['events.csv', 'job.yaml']);
    for (const e of await walkTree(path.join(dir, 'out'))) {
      for (const part of e.path.split(path.sep)) expect(Buffer.byteLength(part)).toBeLessThanOrEqual(255);
    }
  });

  test('every product is published exactly once per customer, under its original name in rows and manifest', async () => {
    const job = await loadJob(path.join(dir, 'job.yaml'));
    const partitions = await committedPartitions(job.output.dir, 'acme', TINY_DATE);
    expect(partitions.map((p) => p.product).sort()).toEqual(['any', ...categories].sort());
    for (const p of partitions) {
      expect(p.manifest.product).toBe(p.product);
      expect(path.basename(p.dir)).toBe(`product=${pathComponent(p.product)}`);
      const contents = (await readPartition(job.output.dir, 'acme', TINY_DATE, p.product))!;
      expect(contents.rows.length).toBe(12);
      expect(new Set(contents.rows.map((r) => r.customer_id)).size).toBe(12);
      expect(new Set(contents.rows.map((r) => r.product))).toEqual(new Set([p.product]));
    }
  });

  test('a Hive-style reader reads the table; a folder name percent-decodes to its product (shortened only for hashed names)', async () => {
    const job = await loadJob(path.join(dir, 'job.yaml'));
    const glob = path.join(job.output.dir, 'predictions', 'account=acme', `date=${TINY_DATE}`, '*', '*.parquet');
    const rows = await duck<{ product: string; n: bigint }>(
      `SELECT product, count(*) AS n FROM read_parquet('${glob}', hive_partitioning = true) GROUP BY product`,
    );
    const expected = ['any', ...categories].map((name) => {
      const folder = pathComponent(name);
      return folder.includes('~') ? decodeURIComponent(folder) : name;
    });
    expect(rows.map((r) => r.product).sort()).toEqual(expected.sort());
    expect(rows.every((r) => Number(r.n) === 12)).toBe(true);
  });

  test('audiences use the same folder names', async () => {
    const job = await loadJob(path.join(dir, 'job.yaml'));
    const audiences = path.join(job.output.dir, 'audiences', 'account=acme', `date=${TINY_DATE}`);
    const folders = (await walkTree(audiences)).filter((e) => e.kind === 'dir').map((e) => e.path);
    expect(folders.sort()).toEqual(['any', ...categories].map((c) => `product=${pathComponent(c)}`).sort());
  });
});

test('a category named like the overall product stops the run as the products are chosen, before any training', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-paths-'));
  try {
    const conf = await writeTinyRun(dir, { categories: ['any', 'k1'] }, tinyJob(2));
    const r = await runCli(['run', '--account', 'acme', '--date', TINY_DATE, '--conf', conf]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/a category is named "any", like the overall product: set products.overall: false/);
    const written = (await walkTree(path.join(dir, 'out'))).map((e) => e.path);
    expect(written.some((p) => p.includes('checkpoints') || p.includes('models'))).toBe(false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 60_000);

