/**
 * The one way a name that comes from data or a job file (a product's category value, an action) becomes
 * a file or folder name. It never refuses: any string maps to a safe, stable, distinct component, so a
 * hostile category trains, scores and publishes under a harmless folder instead of failing after the work.
 *
 *   - letters, digits, '-', '_' and '.' stay as they are (so `any`, `4756105`, `in_store` are unchanged),
 *     except a leading '.', which is encoded (no `.`, `..` or hidden names);
 *   - every other character is percent-encoded as its UTF-8 bytes (`/` → `%2F`, `%` → `%25`, `é` → `%C3%A9`),
 *     the escaping Hive, Spark and DuckDB's hive_partitioning decode back to the original value;
 *   - a name whose encoding would pass MAX_LENGTH characters (or the empty name, or a string that is not
 *     well-formed UTF-16) becomes the start of its encoding, '~', and 16 hex digits of the SHA-256 of the
 *     name. Encodings never contain '~', so the two forms cannot meet; such a folder name decodes to a
 *     shortened name, and the original is in the data and the manifest.
 */
import { createHash } from 'node:crypto';

/** Longest component made, in characters (ASCII only): with a `product=` prefix, well under NAME_MAX (255). */
export const MAX_COMPONENT_LENGTH = 128;
const HASH_HEX = 16;
/** Characters of the encoding kept in front of a hashed name. */
const HASHED_PREFIX = 96;

const KEPT = /[A-Za-z0-9._-]/;
/** With the u flag, paired surrogates are one code point: only a lone one matches. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
/** What pathComponent can return, and nothing else. */
const COMPONENT_FORM = /^(?:(?:[A-Za-z0-9_-]|%[0-9A-F]{2})(?:[A-Za-z0-9._-]|%[0-9A-F]{2})*)?(?:~[0-9a-f]{16})?$/;

export function pathComponent(name: string): string {
  const wellFormed = !LONE_SURROGATE.test(name);
  const encoded = wellFormed ? percentEncode(name, Infinity) : '';
  if (wellFormed && encoded.length > 0 && encoded.length <= MAX_COMPONENT_LENGTH) return encoded;
  // Not well-formed: hash the UTF-16 code units themselves (UTF-8 would merge lone surrogates into U+FFFD).
  const bytes = wellFormed ? Buffer.from(name, 'utf8') : Buffer.from(name, 'utf16le');
  const digest = createHash('sha256').update(bytes).digest('hex').slice(0, HASH_HEX);
  return `${wellFormed ? percentEncode(name, HASHED_PREFIX) : ''}~${digest}`;
}

/** True for strings pathComponent can return: what a folder made by nextbuy may be named. */
export function isPathComponent(s: string): boolean {
  return s.length > 0 && s.length <= MAX_COMPONENT_LENGTH && COMPONENT_FORM.test(s);
}

/** The encoding of `name`'s first characters, as many as fit in `max` (whole characters only, so it decodes as UTF-8). */
function percentEncode(name: string, max: number): string {
  let out = '';
  for (const ch of name) {
    let piece = '';
    if (KEPT.test(ch) && !(out.length === 0 && ch === '.')) piece = ch;
    else for (const b of Buffer.from(ch, 'utf8')) piece += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    if (out.length + piece.length > max) break;
    out += piece;
  }
  return out;
}
