import { describe, expect, test } from 'vitest';
import { createLogger, type LogStream } from '../core/log.js';
import { compact, formatProgressLine, startProgress } from '../core/progress.js';

function clock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function sink(isTTY: boolean, columns = 120) {
  const chunks: string[] = [];
  const stream: LogStream & { columns: number } = { isTTY, columns, write: (s: string) => chunks.push(s) };
  return { stream, chunks, text: () => chunks.join('') };
}

/** A seeded stream of batch sizes, so the counts are not round numbers. */
function batches(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    return 500 + (s % 1000);
  });
}

describe('progress', () => {
  test('off a terminal: a log line every logEvery with done, total, rate and ETA, and one at the end', () => {
    const c = clock();
    const logs = sink(false);
    const logger = createLogger({ stream: logs.stream, level: 'info', now: c.now });
    const sizes = batches(60, 7);
    const total = sizes.reduce((a, b) => a + b, 0);
    const p = startProgress({ stage: 'preprocess', unit: 'rows', total, logEvery: '10s', logger, now: c.now, tty: false });
    let done = 0;
    for (const n of sizes) {
      c.advance(1000); // one batch a second
      done += n;
      p.tick(n);
    }
    p.finish();
    const records = logs.text().trim().split('\n').map((l) => JSON.parse(l));
    const periodic = records.filter((r) => r.event === 'progress');
    expect(periodic.length).toBe(6); // 60 s of work, one line per 10 s
    for (const r of periodic) {
      expect(r).toMatchObject({ stage: 'preprocess', unit: 'rows', total });
      // The rate over the trailing 10 s window, recomputed here from the batches themselves.
      const elapsed = Math.round(r.elapsed_s);
      const windowStart = Math.max(0, elapsed - 10);
      const windowRows = sizes.slice(windowStart, elapsed).reduce((a, b) => a + b, 0);
      expect(r.rate_per_s).toBeCloseTo(windowRows / (elapsed - windowStart), 0);
      expect(r.eta_s).toBe(Math.round((total - r.done) / (windowRows / (elapsed - windowStart))));
    }
    const last = records.at(-1);
    expect(last).toMatchObject({ event: 'progress.done', outcome: 'done', done, total, percent: 100 });
  });

  test('on a terminal: one redrawn line with a bar, percent, counts, rate and ETA; finish ends the line', () => {
    const c = clock();
    const out = sink(true);
    const p = startProgress({ stage: 'score', unit: 'shards', total: 64, stream: out.stream, now: c.now, redrawEvery: '100ms' });
    for (let i = 0; i < 16; i++) {
      c.advance(500);
      p.tick();
    }
    const snap = p.snapshot();
    expect(snap.done).toBe(16);
    expect(snap.ratePerSecond).toBeCloseTo(2, 5);
    expect(snap.etaMs).toBeCloseTo((48 / 2) * 1000, 0);
    const drawn = out.text().split('\r\x1b[K').filter(Boolean);
    expect(drawn.at(-1)).toBe(formatProgressLine(snap, 120));
    expect(drawn.at(-1)).toMatch(/^score \[█{6}░{18}\] 25% 16\/64 shards · 2 shards\/s · ETA 24\.0 s$/);
    p.finish();
    expect(out.text().endsWith('\n')).toBe(true);
    expect(out.text().split('\n').filter(Boolean).at(-1)).toContain('16/64 shards');
  });

  test('a stage that fails says so, and ticks after the end change nothing', () => {
    const c = clock();
    const logs = sink(false);
    const logger = createLogger({ stream: logs.stream, level: 'info', now: c.now });
    const p = startProgress({ stage: 'train', unit: 'epochs', total: 6, logger, now: c.now, tty: false });
    c.advance(3000);
    p.tick(2);
    p.fail(new Error('worker lost'));
    p.tick(3);
    p.finish();
    const records = logs.text().trim().split('\n').map((l) => JSON.parse(l));
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ event: 'progress.stopped', level: 'warn', outcome: 'failed', done: 2, total: 6, error: 'worker lost' });
  });

  test('an unknown total shows a count and a rate, no bar and no ETA', () => {
    const c = clock();
    const out = sink(true);
    const p = startProgress({ stage: 'read', unit: 'rows', stream: out.stream, now: c.now });
    c.advance(2000);
    p.update(84_287);
    const line = formatProgressLine(p.snapshot());
    expect(line).not.toContain('[');
    expect(line).not.toContain('ETA');
    expect(line).toContain(`${compact(84_287)} rows`);
    expect(p.snapshot().etaMs).toBeNull();
    p.setTotal(84_287);
    expect(p.snapshot().etaMs).toBe(0);
    p.finish();
  });

  test('long lines are cut to the terminal width; big numbers are compact', () => {
    const line = formatProgressLine(
      { stage: 'score', unit: 'sequences', done: 1_234_567, total: 9_876_543, elapsedMs: 5_000, ratePerSecond: 246_913.4, etaMs: 35_000 },
      40,
    );
    expect(line.length).toBe(39);
    expect(compact(950)).toBe('950');
    expect(compact(12_345)).toBe('12.3k');
    expect(compact(4_560_000)).toBe('4.56M');
    expect(compact(2.5)).toBe('2.50');
  });
});

describe('a model that stops early', () => {
  test('on a terminal, its bar ends saying "stopped early at epoch k of n", with no ETA', () => {
    const c = clock();
    const out = sink(true);
    const p = startProgress({ stage: 'train lstm.any', unit: 'epochs', total: 6, stream: out.stream, now: c.now, redrawEvery: '0ms' });
    for (let i = 0; i < 3; i++) {
      c.advance(2000);
      p.tick();
    }
    expect(out.text().split('\r\x1b[K').filter(Boolean).at(-1)).toMatch(/50% 3\/6 epochs .*ETA/); // while it runs: an ETA
    p.finish(); // early stopping: patience ran out after epoch 3
    const last = out.text().split('\r\x1b[K').filter(Boolean).at(-1)!;
    expect(last.endsWith('\n')).toBe(true);
    expect(last).toMatch(/^train lstm\.any \[.*\] 50% 3\/6 epochs · .* · stopped early at epoch 3 of 6\n$/);
    expect(last).not.toContain('ETA');
  });

  test('off a terminal, the last line says stopped_early, with no ETA left', () => {
    const c = clock();
    const logs = sink(false);
    const logger = createLogger({ stream: logs.stream, level: 'info', now: c.now });
    const p = startProgress({ stage: 'train lstm.any', unit: 'epochs', total: 6, logger, now: c.now, tty: false });
    c.advance(1000);
    p.tick(2);
    p.finish();
    const last = JSON.parse(logs.text().trim().split('\n').at(-1)!);
    expect(last).toMatchObject({ event: 'progress.done', outcome: 'stopped_early', done: 2, total: 6, note: 'stopped early at epoch 2 of 6' });
    expect(last.eta_s).toBeUndefined();
  });

  test('a model that trains every epoch ends at 100 %', () => {
    const c = clock();
    const out = sink(true);
    const p = startProgress({ stage: 'train lstm.any', unit: 'epochs', total: 2, stream: out.stream, now: c.now });
    c.advance(1000);
    p.update(2);
    p.finish();
    const last = out.text().split('\r\x1b[K').filter(Boolean).at(-1)!;
    expect(last).toMatch(/100% 2\/2 epochs/);
    expect(last).not.toMatch(/stopped early|ETA/);
  });
});
