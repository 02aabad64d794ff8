/**
 * The aggregate features of a set (the latest snapshot's rows): one row per customer and product with the
 * raw values of coordinator/features, for the evaluation's count baselines, `explain` and analysts:
 *
 *   customer_id VARCHAR, product VARCHAR, <feature> DOUBLE … (NULL: no such event in the lookback)
 *
 * Written as a folder of Parquet files, `<set>/features/part-<shard>-<k>.parquet`: each shard's thread writes
 * its own, a new file every FEATURES_ROWS_PER_FILE rows so that memory stays bounded. Read them all with
 * `read_parquet('<set>/features/*.parquet')`.
 *
 * Rows are gathered in typed arrays and appended to a DuckDB table one data chunk at a time (NaN for "never"),
 * then copied to Parquet with NaN written as NULL.
 */
import duckdb from '@duckdb/node-bindings';
import { BIGINT, DOUBLE, UTINYINT, USMALLINT, VARCHAR, DuckDBDataChunk, type DuckDBAppender, type DuckDBType } from '@duckdb/node-api';
import path from 'node:path';
import { setFileMode } from '../../core/file-modes.js';
import { sqlIdent, sqlString, type DuckDB } from '../duckdb/index.js';

const CHUNK_ROWS = 2048;
/** Rows per features file (about 90 MB of DuckDB memory with 41 features). */
export const FEATURES_ROWS_PER_FILE = 262_144;
/** The features files of a set folder, for read_parquet. */
export const FEATURES_GLOB = path.join('features', '*.parquet');

export class FeaturesWriter {
  private rows = 0;
  /** Rows in the table, not yet in a file. */
  private tableRows = 0;
  private readonly files: string[] = [];
  private appender: DuckDBAppender;
  private readonly idHalves = new Int32Array(CHUNK_ROWS * 2);
  private idBytes = new Uint8Array(CHUNK_ROWS * 16);
  private readonly idOffsets = new Int32Array(CHUNK_ROWS + 1);
  private readonly product: Uint16Array = new Uint16Array(CHUNK_ROWS);
  /** [feature][row]; NaN becomes NULL when the file is written. */
  private readonly values: Float64Array[];
  private readonly chunk: DuckDBDataChunk;

  private constructor(
    private readonly db: DuckDB,
    private readonly table: string,
    appender: DuckDBAppender,
    private readonly customerType: 'BIGINT' | 'VARCHAR',
    private readonly products: readonly string[],
    private readonly names: readonly string[],
    /** Files are `${filePrefix}-<k>.parquet`. */
    private readonly filePrefix: string,
  ) {
    this.appender = appender;
    this.values = names.map(() => new Float64Array(CHUNK_ROWS));
    const types: DuckDBType[] = [customerType === 'BIGINT' ? BIGINT : VARCHAR, products.length <= 255 ? UTINYINT : USMALLINT, ...names.map(() => DOUBLE)];
    this.chunk = DuckDBDataChunk.create(types);
  }

  static async create(db: DuckDB, table: string, customerType: 'BIGINT' | 'VARCHAR', products: readonly string[], names: readonly string[], filePrefix: string): Promise<FeaturesWriter> {
    return new FeaturesWriter(db, table, await createTable(db, table, customerType, products, names), customerType, products, names, filePrefix);
  }

  /** One customer: `raw` holds products × features values, product-major (NaN = NULL). */
  add(lo: number, hi: number, bytes: Uint8Array, start: number, length: number, raw: Float64Array): void {
    const width = this.names.length;
    for (let p = 0; p < this.products.length; p++) {
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
      this.product[r] = p;
      for (let j = 0; j < width; j++) this.values[j]![r] = raw[p * width + j]!;
      this.rows = r + 1;
      if (this.rows === CHUNK_ROWS) this.flush();
    }
  }

  /** Writes a file when the table holds FEATURES_ROWS_PER_FILE rows (call between rows). */
  async rotate(): Promise<void> {
    if (this.tableRows + this.rows < FEATURES_ROWS_PER_FILE) return;
    await this.writeFile();
    this.appender = await createTable(this.db, this.table, this.customerType, this.products, this.names);
  }

  /** Writes what is left (at least one file, so that an empty set still has the columns) and drops the table; returns the files. */
  async finish(): Promise<string[]> {
    if (this.tableRows + this.rows > 0 || this.files.length === 0) await this.writeFile();
    else this.appender.closeSync();
    await this.db.run(`DROP TABLE ${this.table}`);
    return this.files;
  }

  private async writeFile(): Promise<void> {
    this.flush();
    this.appender.closeSync();
    const file = `${this.filePrefix}-${String(this.files.length).padStart(4, '0')}.parquet`;
    const id = this.customerType === 'BIGINT' ? 'CAST(f.customer AS VARCHAR)' : 'f.customer';
    const names = this.names.map((n, i) => `CASE WHEN isnan(f.f${i}) THEN NULL ELSE f.f${i} END AS ${sqlIdent(n)}`).join(', ');
    // Rows were appended in the sorted stream's customer order, product by product: COPY keeps that order.
    const productNames = `[${this.products.map((p) => sqlString(p)).join(', ')}]`;
    await this.db.run(`COPY (SELECT ${id} AS customer_id, ${productNames}[f.product + 1] AS product, ${names}
        FROM ${this.table} f) TO ${sqlString(file)} (FORMAT parquet)`);
    await setFileMode(file); // DuckDB created it under the umask
    this.files.push(file);
    this.tableRows = 0;
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
    const productVector = duckdb.data_chunk_get_vector(raw, 1);
    if (this.products.length <= 255) duckdb.copy_data_to_vector(productVector, 0, Uint8Array.from(this.product.subarray(0, n)).buffer as ArrayBuffer, 0, n);
    else duckdb.copy_data_to_vector(productVector, 0, this.product.buffer as ArrayBuffer, 0, n * 2);
    this.values.forEach((v, j) => duckdb.copy_data_to_vector(duckdb.data_chunk_get_vector(raw, 2 + j), 0, v.buffer as ArrayBuffer, 0, n * 8));
    this.chunk.rowCount = n;
    this.appender.appendDataChunk(this.chunk);
    this.tableRows += n;
    this.rows = 0;
  }
}

async function createTable(db: DuckDB, table: string, customerType: 'BIGINT' | 'VARCHAR', products: readonly string[], names: readonly string[]): Promise<DuckDBAppender> {
  const productType = products.length <= 255 ? 'UTINYINT' : 'USMALLINT';
  const columns = [`customer ${customerType}`, `product ${productType}`, ...names.map((_, i) => `f${i} DOUBLE`)];
  await db.run(`CREATE OR REPLACE TABLE ${table} (${columns.join(', ')})`);
  return db.connection.createAppender(table);
}
