/** Helpers for the publish tests: temp folders, seeded nights of scores, and byte-level snapshots of a tree. */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ProductPredictions, PublishOptions } from '../../coordinator/publish/index.js';
import { mulberry32 as seededRandom } from '../../core/random.js';

export { seededRandom };

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-publish-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}


/** A night's scores: `customers` ids per product, scores rounded to 3 decimals so that ties occur. */
export function sampleNight(o: { customers: number; products: string[]; seed: number; version?: string }): ProductPredictions[] {
  const random = seededRandom(o.seed);
  const customerIds = Array.from({ length: o.customers }, (_, i) => `cust-${String(i).padStart(6, '0')}`);
  return o.products.map((product) => ({
    product,
    customerIds: [...customerIds],
    scores: Float32Array.from(customerIds, () => Math.round(random() ** 2 * 1000) / 1000),
    modelVersions: [`${product}-lstm-${o.version ?? 'v1'}`, `attention-${o.version ?? 'v1'}`],
  }));
}

export function publishOptions(outDir: string, products: ProductPredictions[], overrides: Partial<PublishOptions> = {}): PublishOptions {
  return {
    outDir,
    account: 'shop-1',
    date: '2017-12-02',
    runId: 'shop-1-20171202-abc',
    scoredAt: '2017-12-03T02:00:00Z',
    createdAt: '2017-12-03T02:05:00.000Z',
    actions: [
      { name: 'in_store', minScore: 0.4 },
      { name: 'sms', minScore: 0.2 },
    ],
    inputWindow: { from: '2017-11-02', to: '2017-12-02' },
    products,
    ...overrides,
  };
}

/** Every file under `dir` (relative path → sha256), for byte-for-byte comparisons of two trees. */
export async function snapshotTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const entry of (await readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) await walk(full);
      else out[path.relative(dir, full)] = createHash('sha256').update(await readFile(full)).digest('hex');
    }
  };
  await walk(dir);
  return out;
}

/** The same products with their rows in another (seeded) order. */
export function shuffled(products: ProductPredictions[], seed: number): ProductPredictions[] {
  const random = seededRandom(seed);
  return products.map((p) => {
    const order = p.customerIds.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    return { ...p, customerIds: order.map((i) => p.customerIds[i]!), scores: Float32Array.from(order, (i) => p.scores[i]!) };
  });
}

/** Rows of a CSV file as RFC 4180 reads it (quoted cells may hold commas, quotes and line breaks). */
export function parseCsv(text: string): Record<string, string>[] {
  const [header, ...rows] = csvCells(text);
  return rows.map((cells) => Object.fromEntries(cells.map((v, i) => [header![i]!.value, v.value])));
}

export interface CsvCell {
  value: string;
  /** Written in double quotes. */
  quoted: boolean;
}

/** Each row's cells, with whether each was quoted in the file. */
export function csvCells(text: string): CsvCell[][] {
  const rows: CsvCell[][] = [];
  let row: CsvCell[] = [];
  let i = 0;
  while (i < text.length) {
    let value = '';
    let quoted = false;
    if (text[i] === '"') {
      quoted = true;
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) throw new Error('unterminated quoted cell');
        value += text.slice(i, q);
        i = q + 1;
        if (text[i] !== '"') break;
        value += '"';
        i++;
      }
    } else {
      const end = text.slice(i).search(/[,\n]/);
      value = end < 0 ? text.slice(i) : text.slice(i, i + end);
      i += value.length;
    }
    row.push({ value, quoted });
    if (text[i] === ',') i++;
    else {
      rows.push(row);
      row = [];
      i++; // the line break (or the end)
    }
  }
  return rows;
}
