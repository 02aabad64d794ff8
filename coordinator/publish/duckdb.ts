import {
  DuckDBDataChunk,
  DuckDBInstance,
  FLOAT,
  VARCHAR,
  type DuckDBConnection,
  type DuckDBFloatVector,
  type DuckDBVarCharVector,
} from '@duckdb/node-api';

export interface DuckDBSettings {
  /** DuckDB threads. @default DuckDB's own (all cores) */
  threads?: number;
  /** DuckDB memory_limit. @default DuckDB's own (80 % of RAM) */
  memoryLimit?: string;
}

/** An in-memory DuckDB with UTC as its time zone, for the length of `fn`, closed however `fn` ends. */
export async function withDuckDB<T>(settings: DuckDBSettings, fn: (connection: DuckDBConnection) => Promise<T>): Promise<T> {
  const config: Record<string, string> = {};
  if (settings.threads !== undefined) config['threads'] = String(settings.threads);
  if (settings.memoryLimit !== undefined) config['memory_limit'] = settings.memoryLimit;
  const instance = await DuckDBInstance.create(':memory:', config);
  try {
    const connection = await instance.connect();
    try {
      await connection.run("SET TimeZone = 'UTC'");
      return await fn(connection);
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}

const CHUNK_ROWS = 2048;

/**
 * Creates `table`(customer_id VARCHAR, score_0 FLOAT, score_1 FLOAT, …) holding the ids and one score
 * column per array, through data chunks (no SQL per value). Products that share one customer list are
 * loaded together, so their ids cross into DuckDB once.
 */
export async function loadScoreTable(
  connection: DuckDBConnection,
  table: string,
  customerIds: readonly string[],
  scoreColumns: readonly Float32Array[],
): Promise<void> {
  const columns = scoreColumns.map((_, j) => `${scoreColumn(j)} FLOAT`);
  await connection.run(`CREATE OR REPLACE TABLE ${quoteIdentifier(table)} (customer_id VARCHAR, ${columns.join(', ')})`);
  const appender = await connection.createAppender(table);
  try {
    const chunk = DuckDBDataChunk.create([VARCHAR, ...scoreColumns.map(() => FLOAT)]);
    for (let offset = 0; offset < customerIds.length; offset += CHUNK_ROWS) {
      const rows = Math.min(CHUNK_ROWS, customerIds.length - offset);
      chunk.rowCount = rows;
      const ids = chunk.getColumnVector(0) as DuckDBVarCharVector;
      for (let i = 0; i < rows; i++) ids.setItem(i, customerIds[offset + i]!);
      ids.flush();
      scoreColumns.forEach((scores, j) => {
        const vector = chunk.getColumnVector(1 + j) as DuckDBFloatVector;
        for (let i = 0; i < rows; i++) vector.setItem(i, scores[offset + i]!);
        vector.flush();
      });
      appender.appendDataChunk(chunk);
      chunk.reset();
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}

export function scoreColumn(index: number): string {
  return `score_${index}`;
}

export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
