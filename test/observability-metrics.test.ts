import http from 'node:http';
import { describe, expect, test } from 'vitest';
import { UsageError } from '../core/errors.js';
import { defaultRegistry, metrics, metricsPortFromEnv, Registry, serveMetricsFromEnv, startMetricsServer, timeStage } from '../core/metrics.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict reader of the Prometheus text format 0.0.4: every sample belongs to a metric declared by
 * HELP and TYPE before it; names and label syntax are checked; escapes are undone.
 */
function parseExposition(text: string): { types: Map<string, string>; samples: Sample[] } {
  expect(text.endsWith('\n')).toBe(true);
  const types = new Map<string, string>();
  const helped = new Set<string>();
  const samples: Sample[] = [];
  for (const line of text.slice(0, -1).split('\n')) {
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
    expect(Number.isNaN(value) && valueText !== 'NaN').toBe(false);
    samples.push({ name: name!, labels, value });
  }
  return { types, samples };
}

function seeded(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

function get(url: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('Prometheus metrics', () => {
  test('counters, gauges and histograms render as valid exposition text with the values recorded', () => {
    const r = new Registry();
    const done = r.counter({ name: 'test_shards_done_total', help: 'Shards done.', labelNames: ['task'] as const });
    const depth = r.gauge({ name: 'test_queue_depth', help: 'Queue depth.' });
    const buckets = [0.5, 1, 5, 30];
    const dur = r.histogram({ name: 'test_stage_duration_seconds', help: 'Stage time.\nMultiline help.', labelNames: ['stage'] as const, buckets });
    const rand = seeded(42);
    const expected = { train: 0, score: 0 };
    const observed: Record<string, number[]> = { preprocess: [], score: [] };
    for (let i = 0; i < 200; i++) {
      const task = rand() < 0.3 ? 'train' : 'score';
      const n = 1 + Math.floor(rand() * 5);
      done.inc(n, { task });
      expected[task] += n;
      const stage = rand() < 0.5 ? 'preprocess' : 'score';
      const seconds = rand() * 40;
      dur.observe(seconds, { stage });
      observed[stage]!.push(seconds);
    }
    depth.set(7);
    depth.dec(2);

    const { types, samples } = parseExposition(r.render());
    expect(Object.fromEntries(types)).toEqual({
      test_shards_done_total: 'counter',
      test_queue_depth: 'gauge',
      test_stage_duration_seconds: 'histogram',
    });
    const value = (name: string, labels: Record<string, string> = {}) =>
      samples.find((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels))?.value;
    expect(value('test_shards_done_total', { task: 'train' })).toBe(expected.train);
    expect(value('test_shards_done_total', { task: 'score' })).toBe(expected.score);
    expect(value('test_queue_depth')).toBe(5);
    for (const [stage, xs] of Object.entries(observed)) {
      const bucketSamples = samples.filter((s) => s.name === 'test_stage_duration_seconds_bucket' && s.labels.stage === stage);
      expect(bucketSamples.map((s) => s.labels.le)).toEqual([...buckets.map(String), '+Inf']);
      bucketSamples.forEach((s, i) => {
        const le = i < buckets.length ? buckets[i]! : Infinity;
        expect(s.value).toBe(xs.filter((x) => x <= le).length);
      });
      expect(value('test_stage_duration_seconds_count', { stage })).toBe(xs.length);
      expect(value('test_stage_duration_seconds_sum', { stage })).toBeCloseTo(xs.reduce((a, b) => a + b, 0), 6);
    }
  });

  test('label values with quotes, backslashes and newlines survive the round trip', () => {
    const r = new Registry();
    const c = r.counter({ name: 'odd_total', help: 'Odd labels.', labelNames: ['stage'] as const });
    const weird = 'a "quoted" \\ back\nslash';
    c.inc(3, { stage: weird });
    const { samples } = parseExposition(r.render());
    expect(samples).toEqual([{ name: 'odd_total', labels: { stage: weird }, value: 3 }]);
  });

  test('misuse is refused: unknown labels, decreasing counters, bad names, a name registered twice as two types', () => {
    const r = new Registry();
    const c = r.counter({ name: 'x_total', help: 'x', labelNames: ['stage'] as const });
    expect(() => c.inc(1, { customer: 'C-1' } as never)).toThrow(/no label "customer"/);
    expect(() => c.inc(-1)).toThrow(/only increase/);
    expect(() => r.gauge({ name: 'x_total', help: 'x' })).toThrow(/already registered as a counter/);
    expect(r.counter({ name: 'x_total', help: 'x', labelNames: ['stage'] as const })).toBe(c);
    expect(() => r.counter({ name: 'bad-name', help: 'x' })).toThrow(/not a valid/);
    expect(() => r.histogram({ name: 'h', help: 'h', buckets: [1, 1] })).toThrow(/increasing/);
  });

  test('a gauge can read its value at scrape time', () => {
    const r = new Registry();
    const g = r.gauge({ name: 'depth', help: 'd' });
    let queue = 3;
    g.collect(() => queue);
    expect(parseExposition(r.render()).samples[0]!.value).toBe(3);
    queue = 11;
    expect(parseExposition(r.render()).samples[0]!.value).toBe(11);
  });

  test("nextbuy's shared metrics carry the agreed names, and timeStage observes a stage even when it throws", async () => {
    const before = metrics.stageDuration.get({ stage: 'test-stage' }).count;
    await timeStage('test-stage', async () => 1);
    await expect(timeStage('test-stage', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(metrics.stageDuration.get({ stage: 'test-stage' }).count).toBe(before + 2);
    const { types } = parseExposition(defaultRegistry.render());
    expect(Object.fromEntries(types)).toMatchObject({
      nextbuy_shards_done_total: 'counter',
      nextbuy_shards_failed_total: 'counter',
      nextbuy_shards_retried_total: 'counter',
      nextbuy_sequences_total: 'counter',
      nextbuy_queue_depth: 'gauge',
      nextbuy_stage_duration_seconds: 'histogram',
      process_resident_memory_bytes: 'gauge',
    });
  });

  test('the HTTP server answers /metrics, /healthz (200 or 503 with the reason), 404 and 405; close() frees the port', async () => {
    const r = new Registry();
    r.counter({ name: 'served_total', help: 's' }).inc(4);
    let healthy: boolean | 'throw' = true;
    const server = await startMetricsServer({
      port: 0,
      host: '127.0.0.1',
      registry: r,
      health: () => {
        if (healthy === 'throw') throw new Error('engine crashed');
        return healthy ? { ok: true, detail: 'registered' } : { ok: false, detail: 'not registered yet' };
      },
    });
    try {
      const m = await get(`${server.url}/metrics`);
      expect(m.status).toBe(200);
      expect(m.type).toBe('text/plain; version=0.0.4; charset=utf-8');
      expect(parseExposition(m.body).samples).toEqual([{ name: 'served_total', labels: {}, value: 4 }]);
      expect(await get(`${server.url}/healthz`)).toMatchObject({ status: 200, body: 'ok: registered\n' });
      healthy = false;
      expect(await get(`${server.url}/healthz`)).toMatchObject({ status: 503, body: 'unhealthy: not registered yet\n' });
      healthy = 'throw';
      expect(await get(`${server.url}/healthz`)).toMatchObject({ status: 503, body: 'unhealthy: engine crashed\n' });
      expect((await get(`${server.url}/nope`)).status).toBe(404);
      expect((await get(`${server.url}/metrics`, 'POST')).status).toBe(405);
      expect(await get(`${server.url}/metrics`, 'HEAD')).toMatchObject({ status: 200, body: '' });
    } finally {
      await server.close();
      await server.close(); // twice is fine
    }
    const again = await startMetricsServer({ port: server.port, host: '127.0.0.1', registry: r });
    await again.close();
  });

  test('NEXTBUY_METRICS_PORT: unset means no server; set means one on that port; a bad value is a usage error', async () => {
    expect(await serveMetricsFromEnv({}, {})).toBeNull();
    const probe = await startMetricsServer({ port: 0, host: '127.0.0.1' });
    const port = probe.port;
    await probe.close();
    const served = await serveMetricsFromEnv({ host: '127.0.0.1' }, { NEXTBUY_METRICS_PORT: String(port) });
    try {
      expect(served!.port).toBe(port);
      expect((await get(`${served!.url}/healthz`)).status).toBe(200);
    } finally {
      await served!.close();
    }
    expect(metricsPortFromEnv({})).toBeNull();
    expect(metricsPortFromEnv({ NEXTBUY_METRICS_PORT: '9464' })).toBe(9464);
    expect(() => metricsPortFromEnv({ NEXTBUY_METRICS_PORT: 'http' })).toThrow(UsageError);
  });
});
