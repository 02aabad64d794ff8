/**
 * nextbuy's Prometheus metrics on prom-client, and the HTTP server that exposes them on `/metrics`, next
 * to `/healthz` and `/readyz`, on the coordinator and on every worker.
 *
 * Stages use the shared metrics:
 *   metrics.shardsDone.inc();  metrics.sequences.inc(batch.rows);  metrics.queueDepth.set(pending);
 *   const stop = metrics.stageDuration.startTimer({ stage });  …  stop();
 * and a process serves them with `await startMetricsServer({ port })` (port from NEXTBUY_METRICS_PORT via
 * `metricsPortFromEnv()`). The registry is this process's own (not prom-client's global one), so a test or
 * an embedding application that uses prom-client never sees nextbuy's series mixed into its own.
 * Labels carry stage and task names only — never customer ids (see core/log.ts).
 *
 * What one night leaves behind (pushed to a Pushgateway or written for node-exporter) is built per run
 * from its summary: coordinator/pipeline/night-metrics.ts.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { UsageError } from './errors.js';

/** Seconds, from a quick stage to a long night. */
export const STAGE_SECONDS_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200];

/** The registry `/metrics` serves unless told otherwise: this process's. */
export const defaultRegistry = new Registry();
// process_start_time_seconds, process_resident_memory_bytes, CPU, heap, event-loop lag, GC.
collectDefaultMetrics({ register: defaultRegistry });

const registers = [defaultRegistry];

/** nextbuy's metrics, shared by the coordinator and the workers (each process has its own values). */
export const metrics = {
  shardsDone: new Counter({ name: 'nextbuy_shards_done_total', help: 'Shards processed successfully.', registers }),
  shardsFailed: new Counter({ name: 'nextbuy_shards_failed_total', help: 'Shard attempts that failed.', registers }),
  shardsRetried: new Counter({ name: 'nextbuy_shards_retried_total', help: 'Shards leased again after a failed attempt.', registers }),
  /** rate(nextbuy_sequences_total[1m]) is sequences per second. */
  sequences: new Counter({ name: 'nextbuy_sequences_total', help: 'Customer sequences trained on or scored.', registers }),
  queueDepth: new Gauge({ name: 'nextbuy_queue_depth', help: 'Shards waiting to be leased to a worker.', registers }),
  workersLost: new Counter({
    name: 'nextbuy_workers_lost_total',
    help: 'Workers lost during a run, by cause (heartbeat-timeout, removed).',
    labelNames: ['cause'] as const,
    registers,
  }),
  workerLateJoins: new Counter({ name: 'nextbuy_worker_late_joins_total', help: 'Workers that joined after the run started.', registers }),
  stageDuration: new Histogram({
    name: 'nextbuy_stage_duration_seconds',
    help: 'Wall time of each pipeline stage.',
    labelNames: ['stage'] as const,
    buckets: STAGE_SECONDS_BUCKETS,
    registers,
  }),
};

export interface HealthStatus {
  ok: boolean;
  /** Shown in the /healthz body, e.g. 'registered with coordinator' or 'model not loaded'. */
  detail?: string;
}

export interface MetricsServerOptions {
  /** 0 picks a free port (see `.port`). */
  port: number;
  /** @default '0.0.0.0' (pods are scraped from outside; use '127.0.0.1' in tests and on laptops) */
  host?: string;
  /** @default defaultRegistry */
  registry?: Registry;
  /** Answers /healthz (liveness); a throw or `ok: false` gives 503. @default always ok */
  health?: () => HealthStatus | Promise<HealthStatus>;
  /** Answers /readyz (readiness: taking work), like `health`. @default the same as `health` */
  ready?: () => HealthStatus | Promise<HealthStatus>;
}

export interface MetricsServer {
  readonly port: number;
  /** http://host:port */
  readonly url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(o: MetricsServerOptions): Promise<MetricsServer> {
  const registry = o.registry ?? defaultRegistry;
  const host = o.host ?? '0.0.0.0';
  const server = http.createServer((req, res) => {
    void answer(req, res, registry, o.health, o.ready ?? o.health);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | null = null;
  return {
    port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

async function answer(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  registry: Registry,
  health: MetricsServerOptions['health'],
  ready: MetricsServerOptions['ready'],
): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  if (path === '/metrics') {
    let body: string;
    try {
      body = await registry.metrics();
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics failed: ${(e as Error).message}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': registry.contentType });
    res.end(req.method === 'HEAD' ? undefined : body);
    return;
  }
  if (path === '/healthz' || path === '/readyz') {
    const check = path === '/healthz' ? health : ready;
    let status: HealthStatus;
    try {
      status = check ? await check() : { ok: true };
    } catch (e) {
      status = { ok: false, detail: (e as Error).message };
    }
    res.writeHead(status.ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' });
    const word = status.ok ? 'ok' : path === '/healthz' ? 'unhealthy' : 'not ready';
    res.end(req.method === 'HEAD' ? undefined : `${word}${status.detail ? `: ${status.detail}` : ''}\n`);
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: try /metrics, /healthz or /readyz\n');
}

/** NEXTBUY_METRICS_PORT as a port number, or null when unset (no metrics server). */
export function metricsPortFromEnv(env: NodeJS.ProcessEnv = process.env): number | null {
  const v = env.NEXTBUY_METRICS_PORT;
  if (v === undefined || v === '') return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new UsageError(`NEXTBUY_METRICS_PORT must be a port number 0..65535, got "${v}"`);
  return n;
}

/**
 * What a process's entry point calls first: serves /metrics and /healthz on NEXTBUY_METRICS_PORT when
 * it is set (the images and the pods set it), and does nothing (null) when it is not.
 */
export async function serveMetricsFromEnv(
  o: Omit<MetricsServerOptions, 'port'> = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<MetricsServer | null> {
  const port = metricsPortFromEnv(env);
  return port === null ? null : startMetricsServer({ ...o, port });
}
