/**
 * The point-in-time aggregate features that preprocess writes per set (`<runDir>/<set>/features.parquet`),
 * read for one product at a time and aligned to a given customer order, so that the baselines line up row
 * by row with the models' scores and the labels.
 *
 * File columns: customer_id VARCHAR, product VARCHAR, one DOUBLE per feature of coordinator/features
 * (raw values; NULL for a recency with no such event in the lookback); one row per customer × product.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { InputError } from '../../core/errors.js';
import type { AggregateLayout } from '../features/index.js';
import { createCustomerOrder, quoteIdentifier, withDuckDB } from './duckdb.js';

export interface ProductAggregates {
  product: string;
  layout: AggregateLayout;
  /** Rows, in the order of the customer ids asked for. */
  n: number;
  /** columns[f][i]: raw value of layout.features[f] for customer i; NaN where the file has NULL. */
  columns: Float64Array[];
  /** Customers asked for that the file does not list for this product: zero counts and sums, unknown recency and tenure. */
  missing: number;
}

export interface AggregateReader {
  /** One product's features for every customer asked for. */
  product(product: string): Promise<ProductAggregates>;
}

/** Opens `file` for the length of `fn`; customers in the given order. */
export async function withAggregates<T>(
  file: string,
  layout: AggregateLayout,
  customerIds: readonly string[],
  fn: (reader: AggregateReader) => Promise<T>,
): Promise<T> {
  return withDuckDB(async (connection) => {
    await checkColumns(connection, file, layout);
    await createCustomerOrder(connection, 'wanted', customerIds);
    await refuseDuplicates(connection, file);
    const n = customerIds.length;
    const valueSql = layout.names.map((name) => `CAST(f.${quoteIdentifier(name)} AS DOUBLE)`).join(', ');
    return fn({
      async product(product) {
        const columns = layout.features.map((f) => new Float64Array(n).fill(f.kind === 'days' || f.kind === 'tenure' ? Number.NaN : 0));
        const result = await connection.stream(
          `SELECT w.ord, f.customer_id IS NULL AS missing, ${valueSql}
             FROM wanted w LEFT JOIN (SELECT * FROM read_parquet($file) WHERE product = $product) f ON f.customer_id = w.customer_id`,
          { file, product },
        );
        let missing = 0;
        for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
          const ord = chunk.getColumnVector(0);
          const absent = chunk.getColumnVector(1);
          const vectors = layout.names.map((_, j) => chunk.getColumnVector(2 + j));
          for (let r = 0; r < chunk.rowCount; r++) {
            const i = ord.getItem(r) as number;
            if (absent.getItem(r) === true) {
              missing++;
              continue;
            }
            for (let j = 0; j < vectors.length; j++) {
              const v = vectors[j]!.getItem(r) as number | null;
              columns[j]![i] = v === null ? Number.NaN : v;
            }
          }
        }
        if (missing === n && n > 0) {
          throw new InputError(`the features file ${file} has no row for product "${product}": rerun preprocess with this job file`);
        }
        return { product, layout, n, columns, missing };
      },
    });
  });
}

/** The rows `rows` of `a`, in that order. */
export function selectRows(a: ProductAggregates, rows: ArrayLike<number>): ProductAggregates {
  return { ...a, n: rows.length, columns: a.columns.map((c) => Float64Array.from(rows, (i) => c[i]!)), missing: 0 };
}

async function checkColumns(connection: DuckDBConnection, file: string, layout: AggregateLayout): Promise<void> {
  let columns: string[];
  try {
    const described = await connection.runAndReadAll('DESCRIBE SELECT * FROM read_parquet($file)', { file });
    columns = described.getRowObjectsJS().map((r) => String(r['column_name']));
  } catch (e) {
    throw new InputError(`cannot read the features file ${file}: ${(e as Error).message}; run preprocess for this set first`, { cause: e });
  }
  const lacking = ['customer_id', 'product', ...layout.names].filter((c) => !columns.includes(c));
  if (lacking.length > 0) {
    throw new InputError(`the features file ${file} lacks columns [${lacking.join(', ')}]: rerun preprocess with this job file`);
  }
}

async function refuseDuplicates(connection: DuckDBConnection, file: string): Promise<void> {
  const inFile = await connection.runAndReadAll(
    'SELECT customer_id, product FROM read_parquet($file) GROUP BY customer_id, product HAVING count(*) > 1 LIMIT 1',
    { file },
  );
  if (inFile.currentRowCount > 0) {
    const [customer, product] = inFile.getRows()[0]!;
    throw new InputError(`the features file ${file} lists customer "${String(customer)}" for product "${String(product)}" more than once`);
  }
  const asked = await connection.runAndReadAll('SELECT customer_id FROM wanted GROUP BY customer_id HAVING count(*) > 1 LIMIT 1');
  if (asked.currentRowCount > 0) {
    throw new InputError(`customer "${String(asked.getRows()[0]![0])}" is asked for more than once: give each customer once`);
  }
}
