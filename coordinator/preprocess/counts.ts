/**
 * Per-customer event counts by type in a set's feature window, for the evaluation's simple baselines.
 * Rows are gathered in typed arrays and appended to a DuckDB table one data chunk at a time (numbers copied
 * in bulk; only a VARCHAR customer id costs one call per row), then copied to Parquet:
 *
 *   customer_id VARCHAR, n_<eventType> BIGINT (one per job.events.types), days_since_last DOUBLE (NULL: no history)
 */
import duckdb from '@duckdb/node-bindings';
import { BIGINT, DOUBLE, INTEGER, VARCHAR, DuckDBDataChunk, type DuckDBAppender } from '@duckdb/node-api';
import { DAY_MS } from '../../jobs/job.js';
import { sqlIdent, sqlString, type DuckDB } from '../duckdb/index.js';
import { setFileMode } from '../../core/file-modes.js';

const CHUNK_ROWS = 2048;

export class CountsWriter {
  private rows = 0;
  private readonly idHalves = new Int32Array(CHUNK_ROWS * 2);
  private idBytes = new Uint8Array(CHUNK_ROWS * 16);
  private readonly idOffsets = new Int32Array(CHUNK_ROWS + 1);
  private readonly counts: Int32Array[];
  private readonly lastMs = new Float64Array(CHUNK_ROWS);
  private readonly chunk: DuckDBDataChunk;

  private constructor(
    private readonly db: DuckDB,
    private readonly table: string,
    private readonly appender: DuckDBAppender,
    private readonly customerType: 'BIGINT' | 'VARCHAR',
    private readonly eventTypes: readonly string[],
  ) {
    this.counts = eventTypes.map(() => new Int32Array(CHUNK_ROWS));
    this.chunk = DuckDBDataChunk.create([customerType === 'BIGINT' ? BIGINT : VARCHAR, ...eventTypes.map(() => INTEGER), DOUBLE]);
  }

  static async create(db: DuckDB, table: string, customerType: 'BIGINT' | 'VARCHAR', eventTypes: readonly string[]): Promise<CountsWriter> {
    const columns = [`customer ${customerType}`, ...eventTypes.map((_, i) => `n${i} INTEGER`), 'last_ms DOUBLE'];
    await db.run(`CREATE OR REPLACE TABLE ${table} (${columns.join(', ')})`);
    return new CountsWriter(db, table, await db.connection.createAppender(table), customerType, eventTypes);
  }

  /**
   * One customer. BIGINT ids pass their (low, high) halves; VARCHAR ids their UTF-8 bytes.
   * `lastMs` is the last feature event's time, NaN when there is none.
   */
  add(lo: number, hi: number, bytes: Uint8Array, start: number, length: number, counts: Int32Array, lastMs: number): void {
    const r = this.rows;
    if (this.customerType === 'BIGINT') {
      this.idHalves[2 * r] = lo;
      this.idHalves[2 * r + 1] = hi;
    } else {
      const at = this.idOffsets[r]!;
      if (at + length > this.idBytes.length) {
        const grown = new Uint8Array(Math.max(2 * this.idBytes.length, at + length));
        grown.set(this.idBytes);
        this.idBytes = grown;
      }
      this.idBytes.set(bytes.subarray(start, start + length), at);
      this.idOffsets[r + 1] = at + length;
    }
    for (let t = 0; t < this.counts.length; t++) this.counts[t]![r] = counts[t]!;
    this.lastMs[r] = lastMs;
    this.rows = r + 1;
    if (this.rows === CHUNK_ROWS) this.flush();
  }

  /** Appends what is left and writes the Parquet file. */
  async finish(file: string, asOfMs: number): Promise<void> {
    this.flush();
    this.appender.closeSync();
    const id = this.customerType === 'BIGINT' ? 'CAST(customer AS VARCHAR)' : 'customer';
    const n = this.eventTypes.map((t, i) => `n${i}::BIGINT AS ${sqlIdent(`n_${t}`)}`).join(', ');
    await this.db.run(`COPY (SELECT ${id} AS customer_id, ${n},
        CASE WHEN isnan(last_ms) THEN NULL ELSE (${asOfMs} - last_ms) / ${DAY_MS} END AS days_since_last
      FROM ${this.table}) TO ${sqlString(file)} (FORMAT parquet)`);
    await setFileMode(file);
    await this.db.run(`DROP TABLE ${this.table}`);
  }

  close(): void {
    try {
      this.appender.closeSync();
    } catch {
      // already closed by finish()
    }
  }

  private flush(): void {
    const n = this.rows;
    if (n === 0) return;
    const raw = this.chunk.chunk;
    this.chunk.reset();
    const id = duckdb.data_chunk_get_vector(raw, 0);
    if (this.customerType === 'BIGINT') {
      duckdb.copy_data_to_vector(id, 0, this.idHalves.buffer as ArrayBuffer, 0, n * 8);
    } else {
      for (let r = 0; r < n; r++) duckdb.vector_assign_string_element_len(id, r, this.idBytes.subarray(this.idOffsets[r], this.idOffsets[r + 1]));
    }
    this.counts.forEach((c, t) => duckdb.copy_data_to_vector(duckdb.data_chunk_get_vector(raw, 1 + t), 0, c.buffer as ArrayBuffer, 0, n * 4));
    duckdb.copy_data_to_vector(duckdb.data_chunk_get_vector(raw, 1 + this.counts.length), 0, this.lastMs.buffer as ArrayBuffer, 0, n * 8);
    this.chunk.rowCount = n;
    this.appender.appendDataChunk(this.chunk);
    this.rows = 0;
  }
}
