/**
 * A tiny typed wrapper around @duckdb/node-api: one embedded database with its settings, closed where it
 * is opened (`await using db = await openDuckDB(...)`), SQL quoting, small results as plain objects, and
 * large results as a stream of data chunks whose columns are read as typed arrays (./vectors.ts).
 */
import { rm } from 'node:fs/promises';
import { makeDir } from '../../core/file-modes.js';
import { DuckDBInstance, type DuckDBConnection, type DuckDBDataChunk } from '@duckdb/node-api';

export { columnReader, isValid, type ColumnReader, type VarcharColumn } from './vectors.js';

export interface DuckDBOptions {
  /** DuckDB memory_limit, e.g. '2GB'. @default DuckDB's own (80 % of RAM) */
  memoryLimit?: string;
  /** Worker threads. @default all cores */
  threads?: number | null;
  /** Where DuckDB spills when memoryLimit is reached; created on open and removed on close. @default DuckDB's own ('.tmp') */
  tempDirectory?: string;
  /** false lets DuckDB reorder rows of queries without ORDER BY, which saves memory. @default false */
  preserveInsertionOrder?: boolean;
  /** Session TimeZone: how timestamps without a zone are read. @default 'UTC' */
  timeZone?: string;
}

export interface DuckDB extends AsyncDisposable {
  readonly connection: DuckDBConnection;
  /** Runs statements, discarding any result. */
  run(sql: string): Promise<void>;
  /** Runs a query and returns its rows as objects (BIGINT as bigint: cast to DOUBLE in SQL for numbers). */
  all<T extends Record<string, unknown> = Record<string, unknown>>(sql: string): Promise<T[]>;
  /**
   * Streams a query's result chunk by chunk. While the caller handles one chunk DuckDB already produces the
   * next (one chunk of lookahead), so JavaScript work and DuckDB work overlap. Breaking out of the loop
   * releases the result.
   */
  stream(sql: string, connection?: DuckDBConnection): AsyncGenerator<DuckDBDataChunk>;
  /**
   * Another connection to the same database, closed with the database. A streaming result lives only until
   * its connection runs another statement, so a long stream gets a connection of its own.
   */
  connect(): Promise<DuckDBConnection>;
  /** Stops the statements running on every connection: they fail with DuckDB's "Interrupted" error. */
  interrupt(): void;
  close(): Promise<void>;
}

export async function openDuckDB(o: DuckDBOptions = {}): Promise<DuckDB> {
  const settings: Record<string, string> = {
    preserve_insertion_order: String(o.preserveInsertionOrder ?? false),
  };
  if (o.memoryLimit) settings.memory_limit = o.memoryLimit;
  if (o.threads) settings.threads = String(o.threads);
  if (o.tempDirectory) {
    await makeDir(o.tempDirectory);
    settings.temp_directory = o.tempDirectory;
  }
  const instance = await DuckDBInstance.create(':memory:', settings);
  const connections: DuckDBConnection[] = [];
  const connect = async () => {
    const c = await instance.connect();
    connections.push(c);
    // Dates in this project are UTC calendar days; ISO strings without an offset are UTC. The setting is
    // per connection (a new one starts from the machine's zone), so every connection gets it.
    await c.run(`SET TimeZone = ${sqlString(o.timeZone ?? 'UTC')}`);
    return c;
  };
  const connection = await connect();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    for (const c of connections) {
      try {
        c.closeSync();
      } catch {
        // already closed by its user
      }
    }
    instance.closeSync();
    if (o.tempDirectory) await rm(o.tempDirectory, { recursive: true, force: true });
  };
  return {
    connection,
    async run(sql) {
      await connection.run(sql);
    },
    async all<T extends Record<string, unknown>>(sql: string) {
      const reader = await connection.runAndReadAll(sql);
      return reader.getRowObjectsJS() as T[];
    },
    async *stream(sql, on = connection) {
      const result = await on.stream(sql);
      let next: Promise<DuckDBDataChunk | null> | null = result.fetchChunk();
      try {
        for (;;) {
          const chunk = await next;
          next = null;
          if (!chunk || chunk.rowCount === 0) return;
          next = result.fetchChunk();
          yield chunk;
        }
      } finally {
        // The consumer stopped early (break or error): let the lookahead fetch settle before the result is dropped.
        if (next) await next.catch(() => undefined);
      }
    },
    connect,
    interrupt() {
      if (!closed) for (const c of connections) c.interrupt();
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A SQL string literal. */
export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** A quoted SQL identifier (column names from job files may hold spaces, dots or dashes). */
export function sqlIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** A SQL list literal of strings. */
export function sqlStringList(values: readonly string[]): string {
  return `[${values.map(sqlString).join(', ')}]`;
}

const MEMORY_UNITS: Record<string, number> = { kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };
/** A DuckDB memory size ('2GB', '512MiB'): what the job file accepts and memoryBytes() reads. */
export const MEMORY_SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i;

/** A DuckDB size ('2GB', '512MiB') in bytes. */
export function memoryBytes(limit: string): number {
  const m = MEMORY_SIZE_PATTERN.exec(limit.trim());
  if (!m) throw new RangeError(`memory size "${limit}": write a size like '2GB' or '512MiB'`);
  return Number(m[1]) * MEMORY_UNITS[m[2]!.toLowerCase()]!;
}

/** Smallest memory_limit a thread's DuckDB gets: below it a sort spills on every chunk. */
const MIN_THREAD_MEMORY = 128 * 2 ** 20;

/**
 * The memory_limit of each of `threads` databases beside the main one: together half of `limit`, so that the
 * main database (which holds the events) and the threads stay within about `limit` in all.
 */
export function threadMemoryLimit(limit: string, threads: number): string {
  return `${Math.floor(Math.max(MIN_THREAD_MEMORY, memoryBytes(limit) / 2 / threads) / 2 ** 20)}MiB`;
}
