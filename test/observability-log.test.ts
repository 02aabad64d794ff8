import { describe, expect, test } from 'vitest';
import { ClusterError } from '../core/errors.js';
import { parseCommandLine } from '../jobs/args.js';
import { createLogger, forwardLogLine, formatFromEnv, levelFromEnv, setLogContext, setStatusLine, withLogContext, type LogStream } from '../core/log.js';

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  const stream: LogStream = { isTTY, write: (s: string) => chunks.push(s) };
  return { stream, chunks, text: () => chunks.join(''), lines: () => chunks.join('').split('\n').filter(Boolean) };
}

const T0 = Date.UTC(2017, 11, 2, 2, 30, 0);

describe('structured logs', () => {
  test('off a terminal, every line is one JSON object with time, level, event and the fields', () => {
    const out = sink(false);
    const log = createLogger({ stream: out.stream, level: 'info', now: () => T0 });
    log.info('shard.done', { shard: 'train-3', rows: 1024, ms: 12.5 });
    log.warn('worker.slow', { worker: 'w-1', queued: 2 });
    const records = out.lines().map((l) => JSON.parse(l));
    expect(records).toEqual([
      { time: new Date(T0).toISOString(), level: 'info', event: 'shard.done', shard: 'train-3', rows: 1024, ms: 12.5 },
      { time: new Date(T0).toISOString(), level: 'warn', event: 'worker.slow', worker: 'w-1', queued: 2 },
    ]);
  });

  test('format human (the default on a terminal): one short line, time, level, event, key=value', () => {
    const out = sink(true);
    const log = createLogger({ stream: out.stream, level: 'info', now: () => T0 });
    withLogContext({ account: 'acme', date: '2017-12-02', run: 'r1' }, () => log.info('stage.done', { stage: 'score', note: 'two words', shards: 8 }));
    // eslint-disable-next-line no-control-regex
    expect(out.text().replace(/\x1b\[[0-9;]*m/g, '')).toBe('[02:30:00] INFO: stage.done stage=score note="two words" shards=8\n');
    const plain = sink(false);
    createLogger({ stream: plain.stream, level: 'info', now: () => T0, format: 'human' }).info('stage.done', { stage: 'score' });
    expect(plain.text()).toBe('[02:30:00] INFO: stage.done stage=score\n'); // no colours off a terminal
  });

  test('NEXTBUY_LOG_FORMAT picks the format; an unknown value is said and the stream decides', () => {
    expect(formatFromEnv('json')).toEqual({ format: 'json', invalid: null });
    expect(formatFromEnv(' Human ')).toEqual({ format: 'human', invalid: null });
    expect(formatFromEnv(undefined)).toEqual({ format: null, invalid: null });
    expect(formatFromEnv('xml')).toEqual({ format: null, invalid: 'xml' });
  });

  test('every line logged inside a run carries its account, date and run id; a child does not repeat a field it binds', () => {
    const out = sink(false);
    const log = createLogger({ stream: out.stream, level: 'info' });
    log.info('before');
    withLogContext({ account: 'acme', date: '2017-12-02', run: 'r1' }, () => {
      log.info('inside');
      log.child({ account: 'acme' }).info('child');
      setTimeout(() => log.info('later'), 0);
    });
    return new Promise<void>((resolve) =>
      setTimeout(() => {
        const lines = out.lines();
        const records = lines.map((l) => JSON.parse(l));
        expect(records[0]).not.toHaveProperty('run');
        for (const r of records.slice(1)) expect(r).toMatchObject({ account: 'acme', date: '2017-12-02', run: 'r1' });
        expect(records.map((r) => r.event)).toEqual(['before', 'inside', 'child', 'later']);
        expect(lines[2]!.match(/"account"/g)).toHaveLength(1);
        resolve();
      }, 20),
    );
  });

  test('a worker process sets its run once, from its environment', () => {
    const out = sink(false);
    const log = createLogger({ stream: out.stream, level: 'info' });
    setLogContext({ account: 'acme', date: '2017-12-02', run: 'r2' });
    try {
      log.info('registered');
    } finally {
      setLogContext({});
    }
    log.info('after');
    expect(out.lines().map((l) => JSON.parse(l))).toMatchObject([{ run: 'r2', account: 'acme', date: '2017-12-02' }, { event: 'after' }]);
    expect(JSON.parse(out.lines()[1]!)).not.toHaveProperty('run');
  });

  test("another process's JSON log lines are written as ours (pretty in human format); anything else is refused", () => {
    const json = sink(false);
    const jlog = createLogger({ stream: json.stream, level: 'info', format: 'json' });
    const line = JSON.stringify({ level: 'info', time: new Date(T0).toISOString(), worker: 'local-0', event: 'registered' });
    expect(forwardLogLine(line, jlog)).toBe(true);
    expect(forwardLogLine('Hi, looks like you are running TensorFlow.js', jlog)).toBe(false);
    expect(forwardLogLine('{"not":"a log record"}', jlog)).toBe(false);
    expect(json.text()).toBe(`${line}\n`);
    const human = sink(false);
    expect(forwardLogLine(line, createLogger({ stream: human.stream, level: 'info', format: 'human' }))).toBe(true);
    expect(human.text()).toBe('[02:30:00] INFO: registered worker=local-0\n');
  });

  test('customer ids, tokens and contact details never reach a log line; counts do', () => {
    for (const isTTY of [false, true]) {
      const out = sink(isTTY);
      const log = createLogger({ stream: out.stream, level: 'info' }).child({ clientId: 'K-9' });
      log.info('oops', {
        customer_id: 'C-4711',
        customerId: 'C-4712',
        user_id: 'U-1',
        token: 'tok-secret',
        runToken: 'tok-2',
        email: 'a@b.c',
        customers: 814,
        tokens: 50,
      });
      const text = out.text();
      for (const leaked of ['C-4711', 'C-4712', 'U-1', 'tok-secret', 'tok-2', 'a@b.c', 'K-9']) expect(text).not.toContain(leaked);
      expect(text).toContain('814');
      expect(text).toContain('50');
      if (!isTTY) expect(JSON.parse(text)).toMatchObject({ clientId: '[redacted]', customer_id: '[redacted]', runToken: '[redacted]', customers: 814, tokens: 50 });
    }
  });

  test('levels: NEXTBUY_LOG picks the lowest level written; an unknown value falls back to info', () => {
    expect(levelFromEnv('debug')).toEqual({ level: 'debug', invalid: null });
    expect(levelFromEnv(' WARN ')).toEqual({ level: 'warn', invalid: null });
    expect(levelFromEnv(undefined)).toEqual({ level: 'info', invalid: null });
    expect(levelFromEnv('loud')).toEqual({ level: 'info', invalid: 'loud' });

    const out = sink(false);
    const log = createLogger({ stream: out.stream, level: 'warn' });
    log.debug('a');
    log.info('b');
    log.warn('c');
    log.error('d');
    expect(out.lines().map((l) => JSON.parse(l).event)).toEqual(['c', 'd']);
    expect(log.enabled('info')).toBe(false);
    expect(log.enabled('error')).toBe(true);
  });

  test('errors are logged by message and code; the stack only at debug', () => {
    const e = new ClusterError('worker pod x cannot start');
    const info = sink(false);
    createLogger({ stream: info.stream, level: 'info' }).error('run.failed', { error: e });
    const rec = JSON.parse(info.lines()[0]!);
    expect(rec).toMatchObject({ error: e.message, error_code: 'CLUSTER' });
    expect(rec.error_stack).toBeUndefined();

    const debug = sink(false);
    createLogger({ stream: debug.stream, level: 'debug' }).error('run.failed', { error: new TypeError('boom') });
    const rec2 = JSON.parse(debug.lines()[0]!);
    expect(rec2).toMatchObject({ error: 'boom', error_type: 'TypeError' });
    expect(rec2.error_stack).toContain('boom');
  });

  test('a child logger adds its fields to every line', () => {
    const out = sink(false);
    const log = createLogger({ stream: out.stream, level: 'info', fields: { service: 'coordinator' } });
    const run = log.child({ run: 'taobao-2017-12-02', account: 'taobao' });
    run.info('stage.start', { stage: 'preprocess' });
    expect(JSON.parse(out.lines()[0]!)).toMatchObject({ service: 'coordinator', run: 'taobao-2017-12-02', account: 'taobao', stage: 'preprocess' });
  });

  test('a human line clears the progress line, prints, and redraws it', () => {
    const out = sink(true);
    const log = createLogger({ stream: out.stream, level: 'info', now: () => T0 });
    setStatusLine(out.stream, 'score [####] 50%');
    log.info('worker.joined', { worker: 'w-2' });
    setStatusLine(out.stream, null);
    const text = out.text();
    const logAt = text.indexOf('worker.joined');
    expect(text.lastIndexOf('\r\x1b[K', logAt)).toBeGreaterThan(text.indexOf('score [####] 50%'));
    expect(text.slice(logAt)).toContain('\nscore [####] 50%');
    expect(text.endsWith('\r\x1b[K')).toBe(true);
  });
});

describe('--log-format', () => {
  const base = ['run', '--account', 'acme', '--date', '2024-05-10'];
  test('json or human; absent: null (NEXTBUY_LOG_FORMAT, else the terminal decides); anything else is a usage error', () => {
    const args = (extra: string[]) => {
      const parsed = parseCommandLine([...base, ...extra]);
      if (parsed.help) throw new Error('expected arguments, got help');
      return parsed.args;
    };
    expect(args(['--log-format', 'json']).logFormat).toBe('json');
    expect(args(['--log-format', 'human']).logFormat).toBe('human');
    expect(args([]).logFormat).toBeNull();
    expect(() => args(['--log-format', 'xml'])).toThrow(/--log-format must be json or human, got "xml"/);
  });
});
