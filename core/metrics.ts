/**
 * A tiny Prometheus registry (counters, gauges, histograms; text exposition format 0.0.4) and the
 * HTTP server that exposes it on `/metrics`, next to `/healthz` and `/readyz`, on the coordinator and on every worker.
 *
 * Stages use the shared nextbuy metrics:
 *   metrics.shardsDone.inc();  metrics.sequences.inc(batch.rows);  metrics.queueDepth.set(pending);
 *   await timeStage('preprocess', () => buildShards(job));
 * and a process serves them with `await startMetricsServer({ port })` (port from NEXTBUY_METRICS_PORT via
 * `metricsPortFromEnv()`). Labels carry stage and task names only — never customer ids (see core/log.ts).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { UsageError } from './errors.js';

export type LabelValues<L extends string> = Partial<Record<L, string>>;

interface MetricBase {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly labelNames: readonly string[];
  /** Exposition lines for this metric, without HELP/TYPE. */
  samples(): string[];
}

export interface CounterOptions<L extends string> {
  name: string;
  help: string;
  /** @default [] */
  labelNames?: readonly L[];
}

export interface HistogramOptions<L extends string> extends CounterOptions<L> {
  /** Upper bounds, increasing. @default STAGE_SECONDS_BUCKETS */
  buckets?: readonly number[];
}

/** Seconds, from a quick stage to a long night. */
export const STAGE_SECONDS_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200] as const;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Label values keyed in declaration order, so `{a, b}` and `{b, a}` are one series. */
class Series<L extends string, V> {
  private readonly values = new Map<string, { labels: string[]; value: V }>();
  constructor(
    private readonly metric: string,
    private readonly labelNames: readonly L[],
    private readonly initial: () => V,
  ) {}

  get(labels: LabelValues<L> | undefined): V {
    const values = this.labelNames.map((n) => labels?.[n] ?? '');
    for (const k of Object.keys(labels ?? {})) {
      if (!(this.labelNames as readonly string[]).includes(k)) {
        throw new TypeError(`metric ${this.metric} has no label "${k}" (labels: ${this.labelNames.join(', ') || 'none'})`);
      }
    }
    const key = JSON.stringify(values);
    let entry = this.values.get(key);
    if (!entry) {
      entry = { labels: values, value: this.initial() };
      this.values.set(key, entry);
    }
    return entry.value;
  }

  entries(): { labels: string[]; value: V }[] {
    return [...this.values.values()];
  }
}

export class Counter<L extends string = never> implements MetricBase {
  readonly type = 'counter' as const;
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  private readonly series: Series<L, { v: number }>;

  constructor(o: CounterOptions<L>) {
    this.name = o.name;
    this.help = o.help;
    this.labelNames = o.labelNames ?? [];
    this.series = new Series(o.name, this.labelNames, () => ({ v: 0 }));
    if (this.labelNames.length === 0) this.series.get(undefined); // a label-free counter reads 0 before its first inc
  }

  /** Adds `by` (≥ 0; counters never go down). */
  inc(by = 1, labels?: LabelValues<L>): void {
    if (!(by >= 0)) throw new TypeError(`counter ${this.name} can only increase, got ${by}`);
    this.series.get(labels).v += by;
  }

  get(labels?: LabelValues<L>): number {
    return this.series.get(labels).v;
  }

  samples(): string[] {
    return this.series.entries().map((e) => sample(this.name, this.labelNames, e.labels, e.value.v));
  }
}

export class Gauge<L extends string = never> implements MetricBase {
  readonly type = 'gauge' as const;
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  private readonly series: Series<L, { v: number }>;
  private collector: (() => number) | null = null;

  constructor(o: CounterOptions<L>) {
    this.name = o.name;
    this.help = o.help;
    this.labelNames = o.labelNames ?? [];
    this.series = new Series(o.name, this.labelNames, () => ({ v: 0 }));
    if (this.labelNames.length === 0) this.series.get(undefined);
  }

  set(value: number, labels?: LabelValues<L>): void {
    this.series.get(labels).v = value;
  }
  inc(by = 1, labels?: LabelValues<L>): void {
    this.series.get(labels).v += by;
  }
  dec(by = 1, labels?: LabelValues<L>): void {
    this.series.get(labels).v -= by;
  }
  get(labels?: LabelValues<L>): number {
    return this.series.get(labels).v;
  }

  /**
   * Reads the value from `read()` at every scrape instead (label-free gauges only), e.g.
   * `metrics.queueDepth.collect(() => queue.size)`. Pass null to go back to set().
   */
  collect(read: (() => number) | null): void {
    if (this.labelNames.length > 0) throw new TypeError(`gauge ${this.name} has labels; collect() is for label-free gauges`);
    this.collector = read;
  }

  samples(): string[] {
    if (this.collector) this.series.get(undefined).v = this.collector();
    return this.series.entries().map((e) => sample(this.name, this.labelNames, e.labels, e.value.v));
  }
}

interface HistogramState {
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram<L extends string = never> implements MetricBase {
  readonly type = 'histogram' as const;
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly buckets: readonly number[];
  private readonly series: Series<L, HistogramState>;

  constructor(o: HistogramOptions<L>) {
    this.name = o.name;
    this.help = o.help;
    this.labelNames = o.labelNames ?? [];
    if ((this.labelNames as readonly string[]).includes('le')) throw new TypeError(`histogram ${o.name}: "le" is reserved`);
    const buckets = [...(o.buckets ?? STAGE_SECONDS_BUCKETS)];
    if (buckets.length === 0 || buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!))) {
      throw new TypeError(`histogram ${o.name}: buckets must be finite and increasing, got [${buckets.join(', ')}]`);
    }
    this.buckets = buckets;
    this.series = new Series(o.name, this.labelNames, () => ({ counts: buckets.map(() => 0), sum: 0, count: 0 }));
  }

  observe(value: number, labels?: LabelValues<L>): void {
    const s = this.series.get(labels);
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** Starts a clock; calling the result observes the seconds elapsed and returns them. */
  startTimer(labels?: LabelValues<L>): () => number {
    const start = process.hrtime.bigint();
    return () => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      this.observe(seconds, labels);
      return seconds;
    };
  }

  /** Observations so far for one label set: count and sum. */
  get(labels?: LabelValues<L>): { count: number; sum: number } {
    const s = this.series.get(labels);
    return { count: s.count, sum: s.sum };
  }

  samples(): string[] {
    const out: string[] = [];
    const withLe = [...this.labelNames, 'le'];
    for (const { labels, value } of this.series.entries()) {
      this.buckets.forEach((b, i) => out.push(sample(`${this.name}_bucket`, withLe, [...labels, formatNumber(b)], value.counts[i]!)));
      out.push(sample(`${this.name}_bucket`, withLe, [...labels, '+Inf'], value.count));
      out.push(sample(`${this.name}_sum`, this.labelNames, labels, value.sum));
      out.push(sample(`${this.name}_count`, this.labelNames, labels, value.count));
    }
    return out;
  }
}

export class Registry {
  private readonly metrics = new Map<string, MetricBase>();

  /** Registers a counter, or returns the one already registered under that name. */
  counter<L extends string = never>(o: CounterOptions<L>): Counter<L> {
    return this.add(o, 'counter', () => new Counter(o)) as Counter<L>;
  }
  gauge<L extends string = never>(o: CounterOptions<L>): Gauge<L> {
    return this.add(o, 'gauge', () => new Gauge(o)) as Gauge<L>;
  }
  histogram<L extends string = never>(o: HistogramOptions<L>): Histogram<L> {
    return this.add(o, 'histogram', () => new Histogram(o)) as Histogram<L>;
  }

  /** The text exposition format, as `/metrics` serves it. */
  render(): string {
    const lines: string[] = [];
    for (const m of this.metrics.values()) {
      lines.push(`# HELP ${m.name} ${m.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
      lines.push(`# TYPE ${m.name} ${m.type}`);
      lines.push(...m.samples());
    }
    return `${lines.join('\n')}\n`;
  }

  private add(o: CounterOptions<string>, type: MetricBase['type'], make: () => MetricBase): MetricBase {
    const existing = this.metrics.get(o.name);
    if (existing) {
      if (existing.type !== type) throw new TypeError(`metric ${o.name} is already registered as a ${existing.type}`);
      return existing;
    }
    if (!METRIC_NAME.test(o.name)) throw new TypeError(`metric name "${o.name}" is not a valid Prometheus name`);
    for (const l of o.labelNames ?? []) {
      if (!LABEL_NAME.test(l) || l.startsWith('__')) throw new TypeError(`metric ${o.name}: label name "${l}" is not valid`);
    }
    const m = make();
    this.metrics.set(o.name, m);
    return m;
  }
}

function sample(name: string, labelNames: readonly string[], labelValues: readonly string[], value: number): string {
  const pairs = labelNames.map((n, i) => `${n}="${escapeLabel(labelValues[i] ?? '')}"`);
  return `${name}${pairs.length ? `{${pairs.join(',')}}` : ''} ${formatNumber(value)}`;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatNumber(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** The registry `/metrics` serves unless told otherwise. */
export const defaultRegistry = new Registry();

/** nextbuy's metrics, shared by the coordinator and the workers (each process has its own values). */
export const metrics = {
  shardsDone: defaultRegistry.counter({ name: 'nextbuy_shards_done_total', help: 'Shards processed successfully.' }),
  shardsFailed: defaultRegistry.counter({ name: 'nextbuy_shards_failed_total', help: 'Shard attempts that failed.' }),
  shardsRetried: defaultRegistry.counter({ name: 'nextbuy_shards_retried_total', help: 'Shards leased again after a failed attempt.' }),
  /** rate(nextbuy_sequences_total[1m]) is sequences per second. */
  sequences: defaultRegistry.counter({ name: 'nextbuy_sequences_total', help: 'Customer sequences trained on or scored.' }),
  queueDepth: defaultRegistry.gauge({ name: 'nextbuy_queue_depth', help: 'Shards waiting to be leased to a worker.' }),
  workersLost: defaultRegistry.counter({
    name: 'nextbuy_workers_lost_total',
    help: 'Workers lost during a run, by cause (heartbeat-timeout, removed).',
    labelNames: ['cause'] as const,
  }),
  workerLateJoins: defaultRegistry.counter({ name: 'nextbuy_worker_late_joins_total', help: 'Workers that joined after the run started.' }),
  stageDuration: defaultRegistry.histogram({
    name: 'nextbuy_stage_duration_seconds',
    help: 'Wall time of each pipeline stage.',
    labelNames: ['stage'] as const,
  }),
};

const processStart = Date.now() / 1000;
defaultRegistry.gauge({ name: 'process_start_time_seconds', help: 'Start time of the process since the Unix epoch, in seconds.' }).collect(() => processStart);
defaultRegistry.gauge({ name: 'process_resident_memory_bytes', help: 'Resident memory size in bytes.' }).collect(() => process.memoryUsage.rss());

/** Runs `fn`, observing its wall time in nextbuy_stage_duration_seconds{stage} (also when it throws). */
export async function timeStage<T>(stage: string, fn: () => Promise<T> | T): Promise<T> {
  const stop = metrics.stageDuration.startTimer({ stage });
  try {
    return await fn();
  } finally {
    stop();
  }
}

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
    const body = registry.render();
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
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
