/**
 * Typed-array views of a result chunk's columns, straight over DuckDB's vector memory (no value objects).
 *
 * Result chunks from the C API are flat vectors, so a fixed-width column is one contiguous array. Views are
 * valid only while the chunk is alive: copy what you keep. VARCHAR values are 16-byte string_t records
 * (length, then ≤ 12 inline bytes or a 4-byte prefix and a pointer); `stringBytes` copies one value's
 * UTF-8 bytes without decoding it.
 */
import duckdb from '@duckdb/node-bindings';
import type { DuckDBDataChunk } from '@duckdb/node-api';

export interface ColumnReader {
  readonly rows: number;
  float64(column: number): Float64Array;
  float32(column: number): Float32Array;
  int32(column: number): Int32Array;
  uint8(column: number): Uint8Array;
  /** A 64-bit integer column as [low, high] 32-bit halves (little-endian), so it is read without BigInt. */
  int64Halves(column: number): Int32Array;
  /** Validity bits (bit i of byte i >> 3 set = row i not NULL), or null when no row is NULL. */
  validity(column: number): Uint8Array | null;
  /** A VARCHAR column: call `bytes(row)` for one value's UTF-8 bytes. */
  varchar(column: number): VarcharColumn;
}

export interface VarcharColumn {
  /** Length in bytes of row's value. */
  length(row: number): number;
  /** Copies row's UTF-8 bytes into `out` at `at`; returns the byte length. */
  copyTo(row: number, out: Uint8Array, at: number): number;
}

export function columnReader(chunk: DuckDBDataChunk): ColumnReader {
  const rows = chunk.rowCount;
  const raw = chunk.chunk;
  const data = (column: number, bytesPerRow: number) =>
    duckdb.vector_get_data(duckdb.data_chunk_get_vector(raw, column), rows * bytesPerRow);
  return {
    rows,
    float64(column) {
      const d = data(column, 8);
      return new Float64Array(d.buffer, d.byteOffset, rows);
    },
    float32(column) {
      const d = data(column, 4);
      return new Float32Array(d.buffer, d.byteOffset, rows);
    },
    int32(column) {
      const d = data(column, 4);
      return new Int32Array(d.buffer, d.byteOffset, rows);
    },
    uint8(column) {
      const d = data(column, 1);
      return new Uint8Array(d.buffer, d.byteOffset, rows);
    },
    int64Halves(column) {
      const d = data(column, 8);
      return new Int32Array(d.buffer, d.byteOffset, rows * 2);
    },
    validity(column) {
      const words = Math.ceil(rows / 64);
      const bits = duckdb.vector_get_validity(duckdb.data_chunk_get_vector(raw, column), words * 8) as Uint8Array | null | undefined;
      return bits && bits.byteLength > 0 ? bits : null;
    },
    varchar(column) {
      const d = data(column, 16);
      const view = new DataView(d.buffer, d.byteOffset, rows * 16);
      const bytes = new Uint8Array(d.buffer, d.byteOffset, rows * 16);
      return {
        length: (row) => view.getUint32(row * 16, true),
        copyTo(row, out, at) {
          const n = view.getUint32(row * 16, true);
          if (n <= 12) {
            const from = row * 16 + 4;
            for (let i = 0; i < n; i++) out[at + i] = bytes[from + i]!;
          } else {
            out.set(duckdb.get_data_from_pointer(d.buffer as ArrayBuffer, d.byteOffset + row * 16 + 8, n), at);
          }
          return n;
        },
      };
    },
  };
}

export function isValid(validity: Uint8Array | null, row: number): boolean {
  return validity === null || (validity[row >> 3]! & (1 << (row & 7))) !== 0;
}
