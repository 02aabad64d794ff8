/**
 * Gathers the night's scores into per-product columns aligned with the score set's customers, and the
 * labels when the label window has already happened.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { RecordBatchReader, type RecordBatch } from 'apache-arrow';
import { InputError } from '../../core/errors.js';
import { readResultColumns } from '../../proto/result-batch.js';
import { toShardRows } from '../../proto/shard-batch.js';

export interface ScoreSetRows {
  customerIds: string[];
  index: Map<string, number>;
  products: string[];
  /** [customers × products] row-major, or null when the score set is unlabelled. */
  labels: Int8Array | null;
}

/** Reads customer ids (and labels) of every shard of a set, in shard order. */
export async function readScoreSetRows(shardFiles: string[]): Promise<ScoreSetRows> {
  const customerIds: string[] = [];
  const labelParts: Int8Array[] = [];
  let products: string[] = [];
  let labelled = true;
  for (const file of shardFiles) {
    for (const batch of await readBatches(file)) {
      const rows = toShardRows(batch);
      products = rows.products;
      if (!rows.labels) labelled = false;
      const P = products.length;
      for (let row = 0; row < rows.size; row++) {
        // A training set may stack earlier snapshots (training.snapshots): the set's own date is snapshot 0.
        if (rows.snapshot[row] !== 0) continue;
        customerIds.push(rows.customerIds[row]!);
        if (rows.labels) labelParts.push(rows.labels.subarray(row * P, (row + 1) * P));
      }
    }
  }
  const index = new Map<string, number>();
  customerIds.forEach((id, i) => {
    if (index.has(id)) throw new InputError(`customer ${i} appears in two shards of the score set: rebuild the shards (nextbuy preprocess)`);
    index.set(id, i);
  });
  let labels: Int8Array | null = null;
  if (labelled && labelParts.length > 0) {
    labels = new Int8Array(customerIds.length * products.length);
    let at = 0;
    for (const part of labelParts) {
      labels.set(part, at);
      at += part.length;
    }
  }
  return { customerIds, index, products, labels };
}

/** Scores of one (model version, product) pair, aligned with ScoreSetRows.customerIds; NaN where missing. */
export type ScoreColumns = Map<string, Float32Array>;

export const scoreKey = (modelVersion: string, product: string) => `${modelVersion}\u0000${product}`;

/** Reads every result file in `dir` into columns keyed by (model version, product). */
export async function readScoreColumns(dir: string, rows: ScoreSetRows): Promise<ScoreColumns> {
  const columns: ScoreColumns = new Map();
  const files = (await readdir(dir)).filter((f) => f.endsWith('.arrow')).sort();
  for (const f of files) {
    for (const batch of await readBatches(path.join(dir, f))) {
      const r = readResultColumns(batch);
      for (let i = 0; i < r.scores.length; i++) {
        const key = scoreKey(r.modelVersions[i]!, r.products[i]!);
        let column = columns.get(key);
        if (!column) {
          column = new Float32Array(rows.customerIds.length).fill(Number.NaN);
          columns.set(key, column);
        }
        const row = rows.index.get(r.customerIds[i]!);
        if (row === undefined) throw new InputError(`${f}: a result for a customer that is not in the score set: the scores belong to another preprocess run; rerun 'nextbuy score'`);
        column[row] = r.scores[i]!;
      }
    }
  }
  return columns;
}

export async function readBatches(file: string): Promise<RecordBatch[]> {
  const bytes = await readFile(file);
  return [...RecordBatchReader.from(bytes)] as RecordBatch[];
}
