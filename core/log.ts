/**
 * nextbuy's logger: `log.info('shard.done', { shard: 3, rows: 1024 })`.
 *
 * On a terminal it writes one short human line per event; anywhere else (pods, CI, files) one JSON
 * object per line, so log collectors can index the fields. Level from `NEXTBUY_LOG=debug|info|warn|error`.
 * Everything goes to stderr: stdout stays free for what a command prints as its result.
 *
 * The rule on fields: **counts, durations and ids of things nextbuy made** (run, shard, worker, model
 * version, product, date) — never customer ids, raw event values, tokens or credentials. The rule is also
 * enforced mechanically: a field whose name looks like a customer id or a secret is written as
 * `[redacted]` (see REDACTED_FIELD), so a slip in a log call cannot leak one.
 */
import { format as formatValue } from 'node:util';
import { NextbuyError } from './errors.js';

export const LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LEVELS)[number];

export type LogValue = string | number | boolean | null | undefined | bigint | Error | readonly (string | number)[];
export type LogFields = Record<string, LogValue>;

/**
 * Field names written as '[redacted]' whatever their value: a customer/user/client (id), contact details,
 * tokens and secrets. Counts stay readable: `customers: 814` is a number of customers, not an id.
 */
export const REDACTED_FIELD =
  /((^|_|[a-z])(customer|user|client)(_?ids?)?$|e_?mail|phone|secret|passw(or)?d|credential|authorization|(^|_)token$|[a-z]Token$)/i;

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** A logger that adds `fields` (e.g. `{ run: runId, account }`) to every line. */
  child(fields: LogFields): Logger;
  /** Whether a line at `level` would be written (skip building costly fields when not). */
  enabled(level: LogLevel): boolean;
}

/** The minimal stream a logger writes to (process.stderr, or a test's sink). */
export interface LogStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export interface LoggerOptions {
  /** @default process.stderr */
  stream?: LogStream;
  /** 'human' lines or 'json' objects. @default 'human' when `stream.isTTY`, else 'json' */
  format?: 'human' | 'json';
  /** Lowest level written. @default NEXTBUY_LOG, else 'info' */
  level?: LogLevel;
  /** Fields on every line. @default {} */
  fields?: LogFields;
  /** @default Date.now */
  now?: () => number;
}

/** Parses NEXTBUY_LOG; unknown values fall back to 'info' (and say so once, in the first line). */
export function levelFromEnv(value: string | undefined = process.env.NEXTBUY_LOG): { level: LogLevel; invalid: string | null } {
  if (value === undefined || value === '') return { level: 'info', invalid: null };
  const v = value.trim().toLowerCase();
  return (LEVELS as readonly string[]).includes(v) ? { level: v as LogLevel, invalid: null } : { level: 'info', invalid: value };
}

export function createLogger(o: LoggerOptions = {}): Logger {
  const stream = o.stream ?? process.stderr;
  const env = levelFromEnv();
  const sink: Sink = {
    stream,
    format: o.format ?? (stream.isTTY ? 'human' : 'json'),
    level: o.level ?? env.level,
    now: o.now ?? Date.now,
  };
  const logger = new FieldLogger(sink, { ...(o.fields ?? {}) });
  if (o.level === undefined && env.invalid !== null) {
    logger.warn('log.level_invalid', { NEXTBUY_LOG: env.invalid, using: 'info', expected: LEVELS.join('|') });
  }
  return logger;
}

/**
 * A line a progress bar keeps at the bottom of a terminal. Human log lines clear it, print, and
 * redraw it, so bars and logs do not overwrite each other. Used by core/progress.ts.
 */
export function setStatusLine(stream: LogStream, text: string | null): void {
  const previous = statusLines.get(stream);
  if (text === null) {
    statusLines.delete(stream);
    if (previous !== undefined) stream.write(`\r${CLEAR_LINE}`);
    return;
  }
  statusLines.set(stream, text);
  stream.write(`\r${CLEAR_LINE}${text}`);
}

const CLEAR_LINE = '\x1b[K';
const statusLines = new Map<LogStream, string>();

interface Sink {
  stream: LogStream;
  format: 'human' | 'json';
  level: LogLevel;
  now: () => number;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

class FieldLogger implements Logger {
  constructor(
    private readonly sink: Sink,
    private readonly fields: LogFields,
  ) {}

  debug(event: string, fields?: LogFields): void {
    this.write('debug', event, fields);
  }
  info(event: string, fields?: LogFields): void {
    this.write('info', event, fields);
  }
  warn(event: string, fields?: LogFields): void {
    this.write('warn', event, fields);
  }
  error(event: string, fields?: LogFields): void {
    this.write('error', event, fields);
  }
  child(fields: LogFields): Logger {
    return new FieldLogger(this.sink, { ...this.fields, ...fields });
  }
  enabled(level: LogLevel): boolean {
    return RANK[level] >= RANK[this.sink.level];
  }

  private write(level: LogLevel, event: string, fields: LogFields | undefined): void {
    if (!this.enabled(level)) return;
    const all = { ...this.fields, ...(fields ?? {}) };
    const time = this.sink.now();
    const { stream } = this.sink;
    if (this.sink.format === 'json') {
      stream.write(`${JSON.stringify(jsonRecord(time, level, event, all, this.enabled('debug')))}\n`);
      return;
    }
    const line = humanLine(time, level, event, all, this.enabled('debug'));
    const status = statusLines.get(stream);
    stream.write(status === undefined ? `${line}\n` : `\r${CLEAR_LINE}${line}\n${status}`);
  }
}

function jsonRecord(time: number, level: LogLevel, event: string, fields: LogFields, withStack: boolean): Record<string, unknown> {
  const record: Record<string, unknown> = { ts: new Date(time).toISOString(), level, event };
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || k === 'ts' || k === 'level' || k === 'event') continue;
    if (REDACTED_FIELD.test(k)) record[k] = '[redacted]';
    else if (v instanceof Error) Object.assign(record, errorFields(k, v, withStack));
    else if (typeof v === 'bigint') record[k] = v.toString();
    else if (typeof v === 'number' && !Number.isFinite(v)) record[k] = String(v);
    else record[k] = v;
  }
  return record;
}

function errorFields(key: string, e: Error, withStack: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { [key]: e.message };
  if (e instanceof NextbuyError) out[`${key}_code`] = e.code;
  else out[`${key}_type`] = e.name;
  if (withStack && e.stack) out[`${key}_stack`] = e.stack;
  return out;
}

function humanLine(time: number, level: LogLevel, event: string, fields: LogFields, withStack: boolean): string {
  const clock = new Date(time).toISOString().slice(11, 19);
  const parts = [`${clock} ${level.padEnd(5)} ${event}`];
  let stack = '';
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    if (REDACTED_FIELD.test(k)) parts.push(`${k}=[redacted]`);
    else if (v instanceof Error) {
      parts.push(`${k}=${quote(v.message)}`);
      if (withStack && v.stack) stack = `\n${v.stack}`;
    } else parts.push(`${k}=${quote(Array.isArray(v) ? v.join(',') : formatValue('%s', v))}`);
  }
  return parts.join(' ') + stack;
}

function quote(s: string): string {
  return /^[^\s"=]*$/.test(s) && s !== '' ? s : JSON.stringify(s);
}

/** The process-wide logger every stage uses. */
export const log: Logger = createLogger();
