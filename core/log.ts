/**
 * nextbuy's logger: `log.info('shard.done', { shard: 3, rows: 1024 })`, written by pino.
 *
 * One shape for the coordinator, its workers and backfill: one JSON object per line on stderr,
 *   {"level":"info","time":"2017-12-02T02:30:00.000Z","event":"stage.end","account":"taobao","date":"2017-12-02","run":"…","stage":"score","ms":383}
 * or, with format 'human' (the default on a terminal), the same record as one short line through
 * pino-pretty. Level from `NEXTBUY_LOG=debug|info|warn|error`, format from `--log-format` or
 * `NEXTBUY_LOG_FORMAT=json|human`. stdout stays free for what a command prints as its result.
 *
 * Every line of a run carries its account, date and run id: the coordinator runs a date inside
 * `withLogContext()`, a worker reads them from its environment (`setLogContext()` in worker/main.ts).
 *
 * The rule on fields: **counts, durations and ids of things nextbuy made** (run, shard, worker, model
 * version, product, date) — never customer ids, raw event values, tokens or credentials. The rule is also
 * enforced mechanically: a field whose name looks like a customer id or a secret is written as
 * `[redacted]` (see REDACTED_FIELD), so a slip in a log call cannot leak one. pino's `redact` takes fixed
 * paths; these names are a pattern, so the check is pino's log formatter (`scrub`).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { pino, type Logger as PinoLogger } from 'pino';
import { prettyFactory } from 'pino-pretty';
import { NextbuyError } from './errors.js';

export const LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LEVELS)[number];
export const LOG_FORMATS = ['json', 'human'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
/** The environment variable that sets the format (spawned workers inherit it). */
export const LOG_FORMAT_ENV = 'NEXTBUY_LOG_FORMAT';

export type LogValue = string | number | boolean | null | undefined | bigint | Error | readonly (string | number)[];
export type LogFields = Record<string, LogValue>;

/**
 * Field names written as '[redacted]' whatever their value: a customer/user/client (id), contact details,
 * tokens and secrets. Counts stay readable: `customers: 814` is a number of customers, not an id.
 */
export const REDACTED_FIELD =
  /((^|_|[a-z])(customer|user|client)(_?ids?)?$|e_?mail|phone|secret|passw(or)?d|credential|authorization|(^|_)token$|[a-z]Token$)/i;

/** The run a line belongs to: on every line logged inside withLogContext() (or after setLogContext()). */
export interface LogContext {
  account?: string;
  date?: string;
  run?: string;
}

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** A logger that adds `fields` (e.g. `{ worker: 'local-0' }`) to every line. */
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
  /** 'human' lines or 'json' objects. @default NEXTBUY_LOG_FORMAT, else 'human' when `stream.isTTY`, else 'json' */
  format?: LogFormat;
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

/** Parses NEXTBUY_LOG_FORMAT; absent: null (the stream decides); unknown: null and the value, said once. */
export function formatFromEnv(value: string | undefined = process.env[LOG_FORMAT_ENV]): { format: LogFormat | null; invalid: string | null } {
  if (value === undefined || value === '') return { format: null, invalid: null };
  const v = value.trim().toLowerCase();
  return (LOG_FORMATS as readonly string[]).includes(v) ? { format: v as LogFormat, invalid: null } : { format: null, invalid: value };
}

export function createLogger(o: LoggerOptions = {}): Logger {
  const stream = o.stream ?? process.stderr;
  const level = levelFromEnv();
  const format = formatFromEnv();
  const sink = new Sink(stream, o.format ?? format.format ?? defaultFormat(stream));
  const now = o.now ?? Date.now;
  const root: PinoLogger = pino(
    {
      level: o.level ?? level.level,
      base: null, // no pid and hostname: the worker's name and the pod say where a line comes from
      messageKey: 'event',
      timestamp: () => `,"time":"${new Date(now()).toISOString()}"`,
      formatters: {
        level: (label) => ({ level: label }),
        log: (fields) => scrub(fields, root.isLevelEnabled('debug')),
      },
    },
    sink,
  );
  const logger = new PinoFieldLogger(o.fields && Object.keys(o.fields).length > 0 ? root.child(scrub(o.fields, false)) : root, new Set(Object.keys(o.fields ?? {})));
  loggerSinks.set(logger, sink);
  if (o.level === undefined && level.invalid !== null) {
    logger.warn('log.level_invalid', { NEXTBUY_LOG: level.invalid, using: 'info', expected: LEVELS.join('|') });
  }
  if (o.format === undefined && format.invalid !== null) {
    logger.warn('log.format_invalid', { [LOG_FORMAT_ENV]: format.invalid, using: sink.format, expected: LOG_FORMATS.join('|') });
  }
  return logger;
}

function defaultFormat(stream: LogStream): LogFormat {
  return stream.isTTY ? 'human' : 'json';
}

/**
 * Runs `fn` with `context` on every line logged inside it (and in what it starts: timers, callbacks,
 * promises), whichever logger writes it. Concurrent runs (a parallel backfill) each keep their own.
 */
export function withLogContext<T>(context: LogContext, fn: () => T): T {
  return runContext.run({ ...currentContext(), ...defined(context) }, fn);
}

/** Sets the context of every line of this process outside withLogContext() (a worker's run, from its environment). */
export function setLogContext(context: LogContext): void {
  processContext = defined(context);
}

const runContext = new AsyncLocalStorage<LogContext>();
let processContext: LogContext = {};

function currentContext(): LogContext {
  return runContext.getStore() ?? processContext;
}

function defined(context: LogContext): LogContext {
  return Object.fromEntries(Object.entries(context).filter(([, v]) => v !== undefined && v !== '')) as LogContext;
}

/**
 * Switches the process logger to `format` (the CLI's --log-format), and sets NEXTBUY_LOG_FORMAT so that
 * worker processes started afterwards log alike.
 */
export function setLogFormat(format: LogFormat, logger: Logger = log): void {
  const sink = loggerSinks.get(logger);
  if (sink) sink.format = format;
  if (logger === log) process.env[LOG_FORMAT_ENV] = format;
}

/**
 * Writes one JSON log line another process wrote (a local worker's stderr) as if this process had logged it:
 * unchanged in format 'json', pretty-printed in 'human', below a progress bar's line. Returns false, writing
 * nothing, when `line` is not one of our JSON log records (the caller logs it as a field of its own).
 */
export function forwardLogLine(line: string, logger: Logger = log): boolean {
  const sink = loggerSinks.get(logger);
  if (!sink || !line.startsWith('{')) return false;
  try {
    const record = JSON.parse(line) as unknown;
    if (typeof record !== 'object' || record === null || !('level' in record) || !('event' in record)) return false;
  } catch {
    return false;
  }
  sink.write(`${line}\n`);
  return true;
}

/**
 * A line a progress bar keeps at the bottom of a terminal. Log lines clear it, print, and
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
const loggerSinks = new WeakMap<Logger, Sink>();

/** Fields a human line leaves out: the record's own keys, and the run's (the command's header names them). */
const HUMAN_OMITS = new Set(['level', 'time', 'event', 'account', 'date', 'run']);

/**
 * Where pino's JSON lines go: the stream as they are, or through pino-pretty's formatter (called
 * synchronously, in this process: no worker thread, so lines keep their order with stdout and nothing is
 * lost at exit). A progress bar's line is cleared before and redrawn after.
 */
class Sink {
  private pretty: ((line: string) => string) | null = null;

  constructor(
    readonly stream: LogStream,
    public format: LogFormat,
  ) {}

  write(line: string): void {
    const text = this.format === 'json' ? line : this.prettify(line);
    const status = statusLines.get(this.stream);
    this.stream.write(status === undefined ? text : `\r${CLEAR_LINE}${text}${status}`);
  }

  private prettify(line: string): string {
    this.pretty ??= prettyFactory({
      colorize: this.stream.isTTY === true && !process.env.NO_COLOR,
      messageKey: 'event',
      translateTime: 'UTC:HH:MM:ss',
      hideObject: true,
      singleLine: true,
      messageFormat: humanMessage,
    });
    const text = this.pretty(line);
    return text.endsWith('\n') ? text : `${text}\n`;
  }
}

/** `stage.done stage=score note="two words" shards=8`, and a stack on the lines below when there is one. */
function humanMessage(record: Record<string, unknown>, messageKey: string): string {
  const parts = [String(record[messageKey])];
  let stack = '';
  for (const [k, v] of Object.entries(record)) {
    if (HUMAN_OMITS.has(k) || k === messageKey || v === undefined) continue;
    if (k.endsWith('_stack') && typeof v === 'string') stack += `\n${v}`;
    else parts.push(`${k}=${quote(Array.isArray(v) ? v.join(',') : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v))}`);
  }
  return parts.join(' ') + stack;
}

function quote(s: string): string {
  return /^[^\s"=]*$/.test(s) && s !== '' ? s : JSON.stringify(s);
}

/**
 * The fields as written: redacted names, errors as message and code (stack at debug), bigints and
 * non-finite numbers as text (JSON has neither).
 */
function scrub(fields: Record<string, unknown>, withStack: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || k === 'time' || k === 'level') continue;
    if (REDACTED_FIELD.test(k)) out[k] = '[redacted]';
    else if (v instanceof Error) Object.assign(out, errorFields(k, v, withStack));
    else if (typeof v === 'bigint') out[k] = v.toString();
    else if (typeof v === 'number' && !Number.isFinite(v)) out[k] = String(v);
    else out[k] = v;
  }
  return out;
}

function errorFields(key: string, e: Error, withStack: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { [key]: e.message };
  if (e instanceof NextbuyError) out[`${key}_code`] = e.code;
  else out[`${key}_type`] = e.name;
  if (withStack && e.stack) out[`${key}_stack`] = e.stack;
  return out;
}

class PinoFieldLogger implements Logger {
  constructor(
    private readonly pino: PinoLogger,
    /** Field names bound by child(): the run context does not repeat them. */
    private readonly bound: ReadonlySet<string>,
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
    // pino applies no formatter to a child's bindings: scrubbed here.
    const child = new PinoFieldLogger(this.pino.child(scrub(fields, false)), new Set([...this.bound, ...Object.keys(fields).filter((k) => fields[k] !== undefined)]));
    const sink = loggerSinks.get(this);
    if (sink) loggerSinks.set(child, sink);
    return child;
  }
  enabled(level: LogLevel): boolean {
    return this.pino.isLevelEnabled(level);
  }

  private write(level: LogLevel, event: string, fields: LogFields | undefined): void {
    if (!this.pino.isLevelEnabled(level)) return;
    // The event first (pino would write a message last), then the run, then the fields.
    const record: Record<string, unknown> = { event };
    for (const [k, v] of Object.entries(currentContext())) if (!this.bound.has(k) && !(fields && k in fields)) record[k] = v;
    if (fields) for (const [k, v] of Object.entries(fields)) if (k !== 'event') record[k] = v;
    this.pino[level](record);
  }
}

/** The process-wide logger every stage uses. */
export const log: Logger = createLogger();
