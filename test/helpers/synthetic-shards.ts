/**
 * Seeded synthetic shards with a real, learnable signal, for training tests and benchmarks:
 * a customer buys product `any` with high probability when item token 7 is among their last 5 events,
 * and product `c3` when category token 3 is; otherwise rarely.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mulberry32 } from '../../core/random.js';
import { buildShardBatch, encodeBatches, shardSchema, type ShardColumns } from '../../proto/shard-batch.js';

export interface SyntheticShardOptions {
  dir: string;
  customers: number;
  shards: number;
  maxLength?: number;
  seed?: number;
  /** Share of customers in the validation split. @default 0.25 */
  validationShare?: number;
  itemVocab?: number;
  categoryVocab?: number;
  /** Rows per record batch. @default 512 */
  batchRows?: number;
  /** Products labelled: the first follows item 7, the second category 3, others are 5 % noise. @default SYNTHETIC_PRODUCTS */
  products?: string[];
  /** Write labels (training shards) or not (a night's scoring shards). @default true */
  labelled?: boolean;
  /**
   * Aggregate (wide) features per customer and product; the first is 1 when the product's signal is among the
   * customer's last 5 events (a count would see it), the others are noise. @default none
   */
  wideFeatures?: string[];
}

export const SYNTHETIC_PRODUCTS = ['any', 'c3'];
export const SYNTHETIC_FEATURES = ['dt', 'age'];

export interface SyntheticShards {
  shards: { id: string; file: string; rows: number }[];
  positives: Record<string, number>;
  customers: number;
  vocabSizes: { item: number; category: number; event: number };
}

export async function writeSyntheticShards(o: SyntheticShardOptions): Promise<SyntheticShards> {
  const maxLength = o.maxLength ?? 20;
  const itemVocab = o.itemVocab ?? 60;
  const categoryVocab = o.categoryVocab ?? 12;
  const batchRows = o.batchRows ?? 512;
  const random = mulberry32(o.seed ?? 1);
  const products = o.products ?? SYNTHETIC_PRODUCTS;
  const labelled = o.labelled ?? true;
  const P = products.length;
  const wideFeatures = o.wideFeatures ?? [];
  const W = wideFeatures.length;
  const schema = shardSchema({ tokenColumns: ['item', 'category', 'event'], numericColumns: [], products, labelled, asOf: '2020-01-01', maxLength, wideFeatures });
  await mkdir(o.dir, { recursive: true });
  const positives: Record<string, number> = Object.fromEntries(products.map((p) => [p, 0]));
  const shards: SyntheticShards['shards'] = [];
  const perShard = Math.ceil(o.customers / o.shards);
  for (let s = 0; s < o.shards; s++) {
    const rowsHere = Math.max(0, Math.min(perShard, o.customers - s * perShard));
    const batches = [];
    for (let start = 0; start < rowsHere; start += batchRows) {
      const rows = Math.min(batchRows, rowsHere - start);
      const lengths = Array.from({ length: rows }, () => (random() < 0.05 ? 0 : 1 + Math.floor(random() * maxLength)));
      const offsets = new Int32Array(rows + 1);
      lengths.forEach((n, i) => (offsets[i + 1] = offsets[i]! + n));
      const total = offsets[rows]!;
      const c: ShardColumns = {
        customerIds: Array.from({ length: rows }, (_, i) => `c${s}-${start + i}`),
        historyLength: Int32Array.from(lengths),
        offsets,
        tokens: { item: new Int32Array(total), category: new Int32Array(total), event: new Int32Array(total) },
        dt: new Float32Array(total),
        age: new Float32Array(total),
        numeric: {},
        labels: labelled ? new Int8Array(rows * P) : null,
        weight: new Float32Array(rows).fill(1),
        split: new Int8Array(rows),
        wide: new Float32Array(rows * P * W),
      };
      for (let r = 0; r < rows; r++) {
        let sawItem = false;
        let sawCategory = false;
        for (let k = offsets[r]!; k < offsets[r + 1]!; k++) {
          const item = 2 + Math.floor(random() * (itemVocab - 2));
          const category = 2 + Math.floor(random() * (categoryVocab - 2));
          c.tokens.item![k] = item;
          c.tokens.category![k] = category;
          c.tokens.event![k] = 2 + Math.floor(random() * 4);
          c.dt[k] = k === offsets[r] ? 0 : Math.log1p(random() * 86_400);
          c.age[k] = Math.log1p((offsets[r + 1]! - k) * 3_600);
          const recent = offsets[r + 1]! - k <= 5;
          if (recent && item === 7) sawItem = true;
          if (recent && category === 3) sawCategory = true;
        }
        for (let j = 0; j < P; j++) {
          for (let k = 0; k < W; k++) c.wide![(r * P + j) * W + k] = k === 0 && (j === 0 ? sawItem : j === 1 && sawCategory) ? 1 : random();
          const chance = j === 0 ? (sawItem ? 0.85 : 0.08) : j === 1 ? (sawCategory ? 0.8 : 0.05) : 0.05;
          const label = random() < chance ? 1 : 0;
          if (c.labels) c.labels[r * P + j] = label;
          positives[products[j]!]! += label;
        }
        c.split[r] = random() < (o.validationShare ?? 0.25) ? 1 : 0;
      }
      batches.push(buildShardBatch(schema, c));
    }
    const file = path.join(o.dir, `shard-${s}.arrow`);
    if (batches.length > 0) {
      await writeFile(file, encodeBatches(batches));
      shards.push({ id: `shard-${s}`, file, rows: rowsHere });
    }
  }
  return { shards, positives, customers: o.customers, vocabSizes: { item: itemVocab, category: categoryVocab, event: 6 } };
}
