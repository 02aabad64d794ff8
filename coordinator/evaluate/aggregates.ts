/**
 * The point-in-time aggregate features of a set's customers, read back from its shards (each row's `wide`
 * values, the latest snapshot's rows: what the models read), one product at a time and aligned to a given
 * customer order, so that the baselines line up row by row with the models' scores and the labels. Values are
 * raw again (coordinator/features rawAggregate): counts, sums and days; NaN for a recency with no such event.
 */
import { InputError } from '../../core/errors.js';
import { toShardRows } from '../../proto/shard-batch.js';
import { rawAggregate, type AggregateLayout } from '../features/index.js';
import { readShard } from '../preprocess/shards.js';

export interface ProductAggregates {
  product: string;
  layout: AggregateLayout;
  /** Rows, in the order of the customer ids asked for. */
  n: number;
  /** columns[f][i]: raw value of layout.features[f] for customer i; NaN for "never" and unknown. */
  columns: Float64Array[];
  /** Customers asked for that the shards do not hold: zero counts and sums, unknown recency and tenure. */
  missing: number;
}

export interface AggregateReader {
  /** One product's features for every customer asked for. */
  product(product: string): Promise<ProductAggregates>;
}

/** A reader of the shard files' aggregates for `customerIds` (each once), in that order, for the length of `fn`. */
export async function withAggregates<T>(
  shardFiles: readonly string[],
  layout: AggregateLayout,
  customerIds: readonly string[],
  fn: (reader: AggregateReader) => Promise<T>,
): Promise<T> {
  const order = new Map<string, number>();
  customerIds.forEach((id, i) => {
    if (order.has(id)) throw new InputError(`customer "${id}" is asked for more than once: give each customer once`);
    order.set(id, i);
  });
  const n = customerIds.length;
  const width = layout.features.length;
  const names = layout.names.join('\n');
  return fn({
    async product(product) {
      const columns = layout.features.map((f) => new Float64Array(n).fill(f.kind === 'days' || f.kind === 'tenure' ? Number.NaN : 0));
      const seen = new Uint8Array(n);
      let found = 0;
      for (const file of shardFiles) {
        for await (const batch of readShard(file)) {
          const rows = toShardRows(batch);
          if (rows.wideFeatures.join('\n') !== names) {
            throw new InputError(`the shard ${file} carries other aggregate features than the job's: rerun preprocess with this job file`);
          }
          const p = rows.products.indexOf(product);
          if (p < 0) throw new InputError(`the shard ${file} has no product "${product}": rerun preprocess with this job file`);
          const stride = rows.products.length * width;
          for (let row = 0; row < rows.size; row++) {
            // A training set may stack earlier snapshots (training.snapshots): the set's own date is snapshot 0.
            if (rows.snapshot[row] !== 0) continue;
            const i = order.get(rows.customerIds[row]!);
            if (i === undefined) continue;
            if (seen[i]) throw new InputError(`the shards list customer "${rows.customerIds[row]}" twice: rebuild the shards (nextbuy preprocess)`);
            seen[i] = 1;
            found++;
            const at = row * stride + p * width;
            for (let j = 0; j < width; j++) columns[j]![i] = rawAggregate(layout.features[j]!.kind, rows.wide[at + j]!, layout.lookbackDays);
          }
        }
      }
      return { product, layout, n, columns, missing: n - found };
    },
  });
}

/** The rows `rows` of `a`, in that order. */
export function selectRows(a: ProductAggregates, rows: ArrayLike<number>): ProductAggregates {
  return { ...a, n: rows.length, columns: a.columns.map((c) => Float64Array.from(rows, (i) => c[i]!)), missing: 0 };
}
