/**
 * Per-customer event counts written by preprocess (one Parquet file per set), aligned to a given
 * customer order so that baselines line up row by row with the models' scores and the labels.
 *
 * File columns: customer_id VARCHAR, n_<eventType> BIGINT per event type, days_since_last DOUBLE (NULL = no history).
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { InputError } from '../../core/errors.js';
import { createCustomerOrder, quoteIdentifier, withDuckDB } from './duckdb.js';

export interface CustomerCounts {
  /** Rows, in the order of the customer ids asked for. */
  n: number;
  /** Event types, in the file's column order (the `n_` prefix removed). */
  eventTypes: string[];
  /** counts[j][i]: events of eventTypes[j] by customer i. */
  counts: Float64Array[];
  /** Days since the customer's last event; NaN = no history. */
  daysSinceLast: Float64Array;
  /** Customers asked for that the file does not list: they count as no history (zero counts, NaN recency). */
  missing: number;
}

const COUNT_PREFIX = 'n_';

export async function readCounts(file: string, customerIds: readonly string[]): Promise<CustomerCounts> {
  return withDuckDB(async (connection) => {
    const eventTypes = await countColumns(connection, file);
    await createCustomerOrder(connection, 'wanted', customerIds);
    await refuseDuplicates(connection, file);

    const n = customerIds.length;
    const counts = eventTypes.map(() => new Float64Array(n));
    const daysSinceLast = new Float64Array(n).fill(Number.NaN);
    const countSql = eventTypes
      .map((t) => `coalesce(CAST(c.${quoteIdentifier(COUNT_PREFIX + t)} AS DOUBLE), 0)`)
      .join(', ');
    const result = await connection.stream(
      `SELECT w.ord, c.customer_id IS NULL AS missing, CAST(c.days_since_last AS DOUBLE) AS days, ${countSql}
         FROM wanted w LEFT JOIN read_parquet($file) c ON c.customer_id = w.customer_id`,
      { file },
    );
    let missing = 0;
    for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
      const ord = chunk.getColumnVector(0);
      const absent = chunk.getColumnVector(1);
      const days = chunk.getColumnVector(2);
      const countVectors = eventTypes.map((_, j) => chunk.getColumnVector(3 + j));
      for (let r = 0; r < chunk.rowCount; r++) {
        const i = ord.getItem(r) as number;
        if (absent.getItem(r) === true) missing++;
        const d = days.getItem(r) as number | null;
        if (d !== null) daysSinceLast[i] = d;
        for (let j = 0; j < eventTypes.length; j++) counts[j]![i] = countVectors[j]!.getItem(r) as number;
      }
    }
    return { n, eventTypes, counts, daysSinceLast, missing };
  });
}

async function countColumns(connection: DuckDBConnection, file: string): Promise<string[]> {
  let columns: string[];
  try {
    const described = await connection.runAndReadAll('DESCRIBE SELECT * FROM read_parquet($file)', { file });
    columns = described.getRowObjectsJS().map((r) => String(r['column_name']));
  } catch (e) {
    throw new InputError(`cannot read the counts file ${file}: ${(e as Error).message}; run preprocess for this set first`, {
      cause: e,
    });
  }
  const lacking = ['customer_id', 'days_since_last'].filter((c) => !columns.includes(c));
  const eventTypes = columns.filter((c) => c.startsWith(COUNT_PREFIX)).map((c) => c.slice(COUNT_PREFIX.length));
  if (lacking.length > 0 || eventTypes.length === 0) {
    throw new InputError(
      `the counts file ${file} has columns [${columns.join(', ')}]: it needs customer_id, days_since_last and one n_<eventType> per event type`,
    );
  }
  return eventTypes;
}

async function refuseDuplicates(connection: DuckDBConnection, file: string): Promise<void> {
  const inFile = await connection.runAndReadAll(
    'SELECT customer_id FROM read_parquet($file) GROUP BY customer_id HAVING count(*) > 1 LIMIT 1',
    { file },
  );
  if (inFile.currentRowCount > 0) {
    throw new InputError(`the counts file ${file} lists customer "${String(inFile.getRows()[0]![0])}" more than once`);
  }
  const asked = await connection.runAndReadAll(
    'SELECT customer_id FROM wanted GROUP BY customer_id HAVING count(*) > 1 LIMIT 1',
  );
  if (asked.currentRowCount > 0) {
    throw new InputError(`customer "${String(asked.getRows()[0]![0])}" is asked for more than once: give each customer once`);
  }
}
