import http from 'node:http';
import { Counter, Registry } from 'prom-client';
import { describe, expect, test } from 'vitest';
import { UsageError } from '../core/errors.js';
import { defaultRegistry, metrics, metricsPortFromEnv, serveMetricsFromEnv, startMetricsServer } from '../core/metrics.js';
import { histogramCount, parseExposition, promtoolCheck } from './helpers/metrics.js';

/**
 * prom-client's default Node.js metrics name three gauges with a counter's `_total` suffix; promtool says
 * so. They keep prom-client's names because the usual Node.js dashboards read them under those names.
 */
const PROM_CLIENT_NAME_WARNINGS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'].map(
  (n) => `${n} non-counter metrics should not have "_total" suffix`,
);

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
  test("nextbuy's shared metrics carry the agreed names and types, and promtool finds nothing wrong but prom-client's own names", async () => {
    const stop = metrics.stageDuration.startTimer({ stage: 'test-stage' });
    const before = await histogramCount(metrics.stageDuration, { stage: 'test-stage' });
    expect(stop()).toBeGreaterThanOrEqual(0);
    expect(await histogramCount(metrics.stageDuration, { stage: 'test-stage' })).toBe(before + 1);
    metrics.workersLost.inc({ cause: 'removed' });

    const text = await defaultRegistry.metrics();
    const { types, samples } = parseExposition(text);
    expect(Object.fromEntries(types)).toMatchObject({
      nextbuy_shards_done_total: 'counter',
      nextbuy_shards_failed_total: 'counter',
      nextbuy_shards_retried_total: 'counter',
      nextbuy_sequences_total: 'counter',
      nextbuy_queue_depth: 'gauge',
      nextbuy_workers_lost_total: 'counter',
      nextbuy_worker_late_joins_total: 'counter',
      nextbuy_stage_duration_seconds: 'histogram',
      process_start_time_seconds: 'gauge',
      process_resident_memory_bytes: 'gauge',
    });
    expect(samples.filter((s) => s.name === 'nextbuy_stage_duration_seconds_bucket' && s.labels.stage === 'test-stage').map((s) => s.labels.le)).toEqual(
      ['0.1', '0.5', '1', '2.5', '5', '10', '30', '60', '120', '300', '600', '1800', '3600', '7200', '+Inf'],
    );
    const lint = await promtoolCheck(text);
    expect(lint.output.split('\n').filter((l) => l !== '' && !PROM_CLIENT_NAME_WARNINGS.includes(l))).toEqual([]);
  });

  test('the HTTP server answers /metrics, /healthz (200 or 503 with the reason), 404 and 405; close() frees the port', async () => {
    const r = new Registry();
    new Counter({ name: 'served_total', help: 's', registers: [r] }).inc(4);
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
