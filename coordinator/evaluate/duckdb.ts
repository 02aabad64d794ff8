import {
  DuckDBDataChunk,
  DuckDBInstance,
  INTEGER,
  VARCHAR,
  type DuckDBConnection,
  type DuckDBIntegerVector,
  type DuckDBVarCharVector,
} from '@duckdb/node-api';

/** An in-memory DuckDB for the length of `fn`, closed however `fn` ends. */
export async function withDuckDB<T>(fn: (connection: DuckDBConnection) => Promise<T>): Promise<T> {
  const instance = await DuckDBInstance.create(':memory:');
  try {
    const connection = await instance.connect();
    try {
      return await fn(connection);
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}

/** Creates table `name`(ord INTEGER, customer_id VARCHAR) holding `customerIds` in order. */
export async function createCustomerOrder(connection: DuckDBConnection, name: string, customerIds: readonly string[]): Promise<void> {
  await connection.run(`CREATE TABLE ${quoteIdentifier(name)} (ord INTEGER, customer_id VARCHAR)`);
  const appender = await connection.createAppender(name);
  try {
    const chunk = DuckDBDataChunk.create([INTEGER, VARCHAR]);
    const CHUNK_ROWS = 2048;
    for (let offset = 0; offset < customerIds.length; offset += CHUNK_ROWS) {
      const rows = Math.min(CHUNK_ROWS, customerIds.length - offset);
      chunk.rowCount = rows;
      const ord = chunk.getColumnVector(0) as DuckDBIntegerVector;
      const ids = chunk.getColumnVector(1) as DuckDBVarCharVector;
      for (let i = 0; i < rows; i++) {
        ord.setItem(i, offset + i);
        ids.setItem(i, customerIds[offset + i]!);
      }
      ord.flush();
      ids.flush();
      appender.appendDataChunk(chunk);
      chunk.reset();
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}

export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
