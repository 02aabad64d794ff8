/**
 * Prometheus in tests: read one series of a prom-client metric, parse exposition text strictly, lint it
 * with the real `promtool`, and run a real Pushgateway (Debian's prometheus / prometheus-pushgateway
 * packages; .ci/run installs them).
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { Counter, Gauge, Histogram } from 'prom-client';
import { expect } from 'vitest';

export const PROMTOOL = '/usr/bin/promtool';
export const PUSHGATEWAY = '/usr/bin/prometheus-pushgateway';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A counter's or gauge's value for exactly these labels (0 when the series does not exist yet). */
export async function metricValue(metric: Counter<string> | Gauge<string>, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await metric.get();
  return values.find((v) => sameLabels(v.labels as Record<string, string>, labels))?.value ?? 0;
}

/** A histogram's observation count for exactly these labels. */
export async function histogramCount(metric: Histogram<string>, labels: Record<string, string>): Promise<number> {
  const { values } = await metric.get();
  return values.find((v) => v.metricName?.endsWith('_count') && sameLabels(v.labels as Record<string, string>, labels))?.value ?? 0;
}

function sameLabels(a: Record<string, unknown>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && String(a[k]) === b[k]);
}

/**
 * A strict reader of the Prometheus text format 0.0.4: every sample belongs to a metric declared by
 * HELP and TYPE before it; names and label syntax are checked; escapes are undone.
 */
export function parseExposition(text: string): { types: Map<string, string>; samples: Sample[] } {
  expect(text.endsWith('\n')).toBe(true);
  const types = new Map<string, string>();
  const helped = new Set<string>();
  const samples: Sample[] = [];
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue; // blank lines are allowed (prom-client puts one between families)
    let m: RegExpExecArray | null;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line))) {
      helped.add(m[1]!);
      continue;
    }
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      expect(helped.has(m[1]!), `HELP before TYPE for ${m[1]}`).toBe(true);
      expect(types.has(m[1]!), `one TYPE per metric: ${m[1]}`).toBe(false);
      types.set(m[1]!, m[2]!);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    expect(m, `a sample line: ${JSON.stringify(line)}`).not.toBeNull();
    const [, name, labelText = '', valueText] = m!;
    const labels: Record<string, string> = {};
    const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\["\\n])*)"(,|$)/gy;
    let consumed = 0;
    let lm: RegExpExecArray | null;
    while ((lm = labelRe.exec(labelText))) {
      labels[lm[1]!] = lm[2]!.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
      consumed = labelRe.lastIndex;
    }
    expect(consumed, `labels parse fully: ${labelText}`).toBe(labelText.length);
    const family = types.has(name!) ? name! : name!.replace(/_(bucket|sum|count)$/, '');
    expect(types.has(family), `sample ${name} has a TYPE`).toBe(true);
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    // Prometheus reads values with Go's ParseFloat, where NaN is any case: prom-client writes 'Nan' (e.g. the
    // event loop lag before its first sample).
    expect(Number.isNaN(value) && valueText!.toLowerCase() !== 'nan', `a number in ${JSON.stringify(line)}`).toBe(false);
    samples.push({ name: name!, labels, value });
  }
  return { types, samples };
}

/** `promtool check metrics` on `text`: its exit code and everything it said (lint problems, one a line). */
export function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, output: output.trim() }));
    child.stdin.end(text);
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * Runs `fn` with a real Pushgateway on a free loopback port (in memory: no persistence file), started
 * and ready before `fn` and stopped after it.
 */
export async function withPushgateway<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // Debian's build persists to /var/lib/prometheus/pushgateway.data by default: an empty name keeps it in memory.
  const child = spawn(PUSHGATEWAY, [`--web.listen-address=127.0.0.1:${port}`, '--persistence.file='], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => (log += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`${PUSHGATEWAY} exited with ${child.exitCode}: ${log}`);
      const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
      if (ready) break;
      if (i >= 200) throw new Error(`${PUSHGATEWAY} not ready on ${url} after 10 s: ${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return await fn(url);
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  }
}

/** The Pushgateway's own /metrics, parsed: every pushed group's series with the grouping labels added. */
export async function scrapePushgateway(url: string): Promise<{ text: string; samples: Sample[] }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return { text, samples: parseExposition(text).samples };
}
