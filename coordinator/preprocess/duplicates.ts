/**
 * Duplicate events, dropped while the sequences are built (./sequences.ts), reported in the quarantine: their
 * keys go to a small DuckDB table, and one query finds the matching input rows with their file and row.
 */
import type { DuckDBAppender } from '@duckdb/node-api';
import type { Job } from '../../jobs/job.js';
import { sqlIdent, type DuckDB } from '../duckdb/index.js';
import { rawColumns } from './events.js';
import type { InputSource } from './input.js';
import type { DuplicateEvent } from './sequences.js';

export const DUPLICATE_KEYS = 'duplicate_keys';

/** Keys of dropped duplicates, appended to DUPLICATE_KEYS row by row (they are rare). */
export class DuplicateKeyWriter {
  private queue: DuplicateEvent[] = [];

  private constructor(private readonly appender: DuckDBAppender) {}

  static async create(db: DuckDB): Promise<DuplicateKeyWriter> {
    await db.run(`CREATE OR REPLACE TABLE ${DUPLICATE_KEYS} (customer VARCHAR, ts BIGINT, e UTINYINT, hi UBIGINT, hc UBIGINT)`);
    return new DuplicateKeyWriter(await db.connection.createAppender(DUPLICATE_KEYS));
  }

  add(d: DuplicateEvent): void {
    this.queue.push(d);
  }

  /** Appends what was added so far. */
  flush(): void {
    const a = this.appender;
    for (const d of this.queue.splice(0)) {
      a.appendVarchar(d.customer);
      a.appendBigInt(BigInt(d.ts));
      a.appendUTinyInt(d.e);
      a.appendUBigInt(unsigned64(d.itemHash));
      a.appendUBigInt(unsigned64(d.categoryHash));
      a.endRow();
    }
    a.flushSync();
  }

  close(): void {
    this.flush();
    this.appender.closeSync();
  }
}

function unsigned64([lo, hi]: [number, number]): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/**
 * The rejected copies of duplicate events, shaped like the quarantine: rows of `eventsWithRaw` that match a
 * key in `keysTable` (customer VARCHAR, ts BIGINT, e UTINYINT, hi UBIGINT, hc UBIGINT), numbered within
 * each group of identical events by file and row; every copy after the first is a duplicate.
 */
export function duplicatesSql(job: Job, input: InputSource, eventsWithRaw: string, keysTable = DUPLICATE_KEYS): string {
  const names = rawColumns(input);
  const nums = job.columns.numeric.map((_, i) => `, n${i}`).join('');
  return `SELECT ${names.map((n, i) => `raw_${i} AS ${sqlIdent(n)}`).join(', ')}, 'duplicate' AS reason, source_file, source_row
    FROM (
      SELECT *, row_number() OVER (PARTITION BY customer, ts, e, hash(item), hash(cat)${nums} ORDER BY source_file, source_row) AS copy
      FROM (${eventsWithRaw}) x
      WHERE reason = 0 AND EXISTS (
        SELECT 1 FROM ${keysTable} d
        WHERE d.customer = CAST(x.customer AS VARCHAR) AND d.ts = x.ts AND d.e = x.e AND d.hi = hash(x.item) AND d.hc = hash(x.cat))
    ) WHERE copy > 1`;
}
