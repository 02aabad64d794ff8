/**
 * Preprocess benchmark: the full preprocess (validate → vocabularies → sequences → Arrow shards, both sets)
 * next to a bare DuckDB baseline on the same files (read + hash-partition + list_sort(array_agg(...)) written
 * to Parquet), at each size given. Prints events/s, peak RSS and the ratio of the two throughputs. The
 * baseline runs as one query; where that runs out of memory under the preprocess's memory limit, it runs
 * partitioned (input written in hash partitions, then one GROUP BY each) under the same limit.
 *
 *   npx tsx bench/preprocess.ts 10M 100M                 # the sizes of the issue
 *   npx tsx bench/preprocess.ts 1M --memory 2GB --data /tmp/nextbuy-bench
 *
 * Each measurement runs in its own child process, so peak RSS (the larger of sampled
 * process.memoryUsage().rss and the kernel's maxRSS) is that run's alone; DuckDB lives in the same process,
 * so its memory is included. Generated data is kept under --data and reused when present.
 * Each size runs at each of --threads (default 1,2: resources.threads, which governs DuckDB and the parallel sequence
 * pass; the baseline's DuckDB gets the same), then prints the scaling from the first to the last thread count.
 * Goals (issue #21): ≥ 1.8× from 1 to 2 threads; ≥ 2 M events/s on 2 threads at 10 M with --memory 12GB;
 * ≥ 1.5 M events/s at 100 M with the default limit; peak RSS under memory_limit + 1 GiB at any thread count.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import type { Job } from '../jobs/job.js';
import { compileJob } from '../jobs/job-file.js';
import { preprocess } from '../coordinator/preprocess/index.js';
import { generateEvents } from './synthetic-events.js';
import { memoryBytes } from '../coordinator/duckdb/index.js';
import { machineLine } from './machine.js';

const START = '2026-10-01';
const DAYS = 30;
const SCORE_DATE = '2026-10-29'; // labels of the score set: the last two days; train as-of 2026-10-27
const SHARDS = 16;

interface Measurement {
  kind: 'preprocess' | 'baseline';
  events: number;
  seconds: number;
  peakRssBytes: number;
  memoryLimit: string;
  note?: string;
}

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(s);
  if (!m) throw new Error(`size "${s}": write 1000000, 1M or 500k`);
  return Math.round(Number(m[1]) * (m[2]?.toLowerCase() === 'm' ? 1e6 : m[2]?.toLowerCase() === 'k' ? 1e3 : 1));
}

function flag(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
}

/** The benchmark's job, through the same loader as a job file (so its defaults are the product's). */
function benchJob(inputPath: string, runDir: string, memoryLimit: string, threads: number | null): Job {
  return compileJob(
    {
      account: 'bench',
      input: { path: inputPath, format: 'parquet', timeFormat: 'epoch_seconds' },
      columns: {
        customer: 'user_id', time: 'timestamp', eventType: 'behavior_type', item: 'item_id', category: 'category_id',
        numeric: [{ column: 'price', min: 0 }],
      },
      events: { types: ['pv', 'cart', 'fav', 'buy'], purchase: 'buy' },
      validation: { validFrom: START },
      label: { horizonDays: 2 },
      sequence: { lookbackDays: 28, maxLength: 50 },
      products: { overall: true, topCategories: 3 },
      sampling: { negativeRate: 0.2 },
      shards: { count: SHARDS, batchRows: 4096 },
      model: { architectures: ['lstm'] },
      actions: [{ name: 'in_store', minScore: 0.4 }],
      output: { dir: runDir },
      resources: { memoryLimit, ...(threads ? { threads } : {}) },
    },
    path.join(runDir, 'bench-job.yaml'),
  );
}

/** Samples RSS while `work` runs; returns the peak (also checking the kernel's high-water mark). */
async function withPeakRss<T>(work: () => Promise<T>): Promise<{ value: T; peak: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    const value = await work();
    return { value, peak: Math.max(peak, process.memoryUsage().rss, vmHwm()) };
  } finally {
    clearInterval(timer);
  }
}

/** The kernel's peak resident set of this process (the child runs one measurement, so it is that run's). */
function vmHwm(): number {
  return process.resourceUsage().maxRSS * 1024;
}

async function runPreprocess(inputPath: string, runDir: string, memoryLimit: string, threads: number | null, events: number): Promise<Measurement> {
  await rm(runDir, { recursive: true, force: true });
  const job = benchJob(inputPath, runDir, memoryLimit, threads);
  const t0 = performance.now();
  const { value, peak } = await withPeakRss(() => preprocess({ job, scoreDate: SCORE_DATE, runDir }));
  const seconds = (performance.now() - t0) / 1000;
  if (value.stats.rowsRead !== events) throw new Error(`read ${value.stats.rowsRead} rows, expected ${events}`);
  const steps = Object.entries(value.stats.timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ');
  const sets = (['train', 'score'] as const).map((s) => `${s}: ${value[s]!.customers} customers, ${value[s]!.positives.any} positives (any)`).join('; ');
  await rm(runDir, { recursive: true, force: true });
  return { kind: 'preprocess', events, seconds, peakRssBytes: peak, memoryLimit, note: `${steps}; ${sets}` };
}

const EVENT_STRUCT = '{ts: "timestamp", type: behavior_type, item: item_id, category: category_id, price: price}';
/** Events per partition in the partitioned baseline: few enough for one partition's array_agg to fit under a 2 GB limit. */
const BASELINE_EVENTS_PER_PARTITION = 1_000_000;

/**
 * Bare DuckDB: read, hash-partition by customer, one sorted list of events per customer, Parquet out.
 * `single`: all in one GROUP BY, hash-partitioned on write. It keeps every customer's list in memory at
 * once, so it runs out of memory under the preprocess's own limit. `partitioned`: the same steps as two
 * passes, the way one makes DuckDB finish under that limit: write the input hash-partitioned, then one
 * GROUP BY per partition.
 */
async function runBaseline(inputPath: string, outDir: string, memoryLimit: string, threads: number | null, events: number, mode: 'single' | 'partitioned'): Promise<Measurement> {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const partitions = SHARDS * Math.max(1, 2 ** Math.ceil(Math.log2(events / (SHARDS * BASELINE_EVENTS_PER_PARTITION))));
  const t0 = performance.now();
  const { peak } = await withPeakRss(async () => {
    const settings: Record<string, string> = { memory_limit: memoryLimit, temp_directory: path.join(outDir, 'tmp'), preserve_insertion_order: 'false' };
    if (threads) settings.threads = String(threads);
    const instance = await DuckDBInstance.create(':memory:', settings);
    const c = await instance.connect();
    try {
      if (mode === 'single') {
        await c.run(`COPY (
            SELECT hash(user_id) % ${SHARDS} AS shard, user_id, list_sort(array_agg(${EVENT_STRUCT})) AS events
            FROM read_parquet('${inputPath}') GROUP BY user_id
          ) TO '${path.join(outDir, 'out')}' (FORMAT parquet, PARTITION_BY (shard), OVERWRITE_OR_IGNORE true)`);
      } else {
        const parts = path.join(outDir, 'parts');
        await mkdir(path.join(outDir, 'out'), { recursive: true });
        await c.run(`COPY (SELECT hash(user_id) % ${partitions} AS part, * FROM read_parquet('${inputPath}'))
          TO '${parts}' (FORMAT parquet, PARTITION_BY (part), OVERWRITE_OR_IGNORE true)`);
        for (let p = 0; p < partitions; p++) {
          const dir = path.join(parts, `part=${p}`);
          if (!existsSync(dir)) continue; // no customer hashed there
          await c.run(`COPY (
              SELECT user_id, list_sort(array_agg(${EVENT_STRUCT})) AS events FROM read_parquet('${dir}/*.parquet') GROUP BY user_id
            ) TO '${path.join(outDir, 'out', `part-${p}.parquet`)}' (FORMAT parquet)`);
        }
      }
    } finally {
      c.closeSync();
      instance.closeSync();
    }
  });
  const seconds = (performance.now() - t0) / 1000;
  await rm(outDir, { recursive: true, force: true });
  const note = mode === 'partitioned' ? `partitioned: input written in ${partitions} hash partitions, then one GROUP BY per partition` : undefined;
  return { kind: 'baseline', events, seconds, peakRssBytes: peak, memoryLimit, note };
}

/** Runs one measurement in a child process (fresh RSS); a failure comes back as an Error with its message. */
async function measureInChild(args: string[]): Promise<Measurement> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ['--import', 'tsx', self, '--child', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (code !== 0 || !line) {
    const lines = err.trim().split('\n');
    throw new Error(lines.find((l) => /Error/.test(l))?.trim() ?? (lines.slice(-3).join(' ') || `child exited with ${code}`));
  }
  return JSON.parse(line.slice('RESULT '.length)) as Measurement;
}

async function child(args: string[]): Promise<void> {
  const [kind, inputPath, workDir, memoryLimit, threadsArg, eventsArg] = args;
  const threads = threadsArg === 'auto' ? null : Number(threadsArg);
  const events = Number(eventsArg);
  const m = kind === 'preprocess'
    ? await runPreprocess(inputPath!, workDir!, memoryLimit!, threads, events)
    : await runBaseline(inputPath!, workDir!, memoryLimit!, threads, events, kind === 'baseline-partitioned' ? 'partitioned' : 'single');
  console.log(`RESULT ${JSON.stringify(m)}`);
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
const rate = (m: Measurement) => m.events / m.seconds;
const mps = (r: number) => `${(r / 1e6).toFixed(2)} M events/s`;

function machine(): string {
  const { version } = createRequire(import.meta.url)('@duckdb/node-api/package.json') as { version: string };
  return `${machineLine()} · @duckdb/node-api ${version} · load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`;
}

/** Baseline then preprocess at one thread count; a baseline out of memory in its one-query form is measured partitioned. */
async function measureAt(inputPath: string, work: string, memoryLimit: string, threads: string, events: number): Promise<Record<'baseline' | 'preprocess', Measurement | Error>> {
  const results = {} as Record<'baseline' | 'preprocess', Measurement | Error>;
  for (const kind of ['baseline', 'preprocess'] as const) {
    try {
      results[kind] = await measureInChild([kind, inputPath, work, memoryLimit, threads, String(events)]);
    } catch (e) {
      if (kind === 'baseline' && /Out of Memory/i.test((e as Error).message)) {
        // The one-query list_sort(array_agg()) keeps every list in memory: report that, then measure the
        // partitioned form under the same memory limit as the preprocess.
        try {
          const m = await measureInChild(['baseline-partitioned', inputPath, work, memoryLimit, threads, String(events)]);
          results[kind] = { ...m, note: `the one-query form ran out of memory at memory_limit ${memoryLimit}; ${m.note}` };
        } catch (e2) {
          results[kind] = e2 as Error;
        }
      } else {
        results[kind] = e as Error;
      }
    }
  }
  return results;
}

const ok = (m: Measurement | Error | undefined): m is Measurement => m !== undefined && !(m instanceof Error);

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--child') return child(args.slice(1));
  const sizes = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1]!.startsWith('--'))).map(parseSize);
  if (sizes.length === 0) sizes.push(10_000_000, 100_000_000);
  const dataRoot = flag(args, 'data', path.join(os.tmpdir(), 'nextbuy-bench'));
  const memoryLimit = flag(args, 'memory', '2GB');
  const threadCounts = flag(args, 'threads', '1,2').split(',');
  const limitBytes = memoryBytes(memoryLimit);

  console.log(`machine: ${machine()}`);
  console.log(`job: ${SHARDS} shards, max length 50, lookback 28 d, horizon 2 d, both sets, negative rate 0.2, 4 products × 41 aggregate features; DuckDB memory_limit ${memoryLimit}, threads ${threadCounts.join(' and ')}`);
  for (const events of sizes) {
    const dir = path.join(dataRoot, `events-${events}`);
    const marker = path.join(dir, 'generated.json');
    if (!existsSync(marker)) {
      console.log(`generating ${events.toLocaleString('en-US')} events → ${dir} …`);
      const g = await generateEvents({ events, out: dir, format: 'parquet', start: START, days: DAYS, seed: 7 });
      await writeFile(marker, JSON.stringify(g));
    }
    const { inputPath } = JSON.parse(await readFile(marker, 'utf8')) as { inputPath: string };
    const work = path.join(dataRoot, `work-${events}`);
    console.log(`\n${events.toLocaleString('en-US')} events`);
    const byThreads = new Map<string, Record<'baseline' | 'preprocess', Measurement | Error>>();
    for (const threads of threadCounts) {
      const results = await measureAt(inputPath, work, memoryLimit, threads, events);
      byThreads.set(threads, results);
      for (const kind of ['baseline', 'preprocess'] as const) {
        const m = results[kind];
        const label = `${kind} × ${threads}`.padEnd(16);
        if (!ok(m)) console.log(`  ${label}  FAILED: ${(m as Error).message}`);
        else console.log(`  ${label}  ${m.seconds.toFixed(1)} s  ${mps(rate(m))}  peak RSS ${gib(m.peakRssBytes)}${m.peakRssBytes > limitBytes + 2 ** 30 ? ' (OVER memory_limit + 1 GiB)' : ''}${m.note ? `\n                    ${m.note}` : ''}`);
      }
      const b = results.baseline;
      const p = results.preprocess;
      if (ok(b) && ok(p)) console.log(`  ${'ratio'.padEnd(16)}  preprocess / baseline throughput at ${threads} thread(s) = ${((rate(p) / rate(b)) * 100).toFixed(0)} %`);
    }
    const [first, last] = [threadCounts[0]!, threadCounts.at(-1)!];
    const p1 = byThreads.get(first)?.preprocess;
    const pn = byThreads.get(last)?.preprocess;
    const b1 = byThreads.get(first)?.baseline;
    const bn = byThreads.get(last)?.baseline;
    if (first !== last && ok(p1) && ok(pn)) {
      const scaling = rate(pn) / rate(p1);
      const baselineScaling = ok(b1) && ok(bn) ? ` (baseline: ${(rate(bn) / rate(b1)).toFixed(2)}×)` : '';
      console.log(`  ${'scaling'.padEnd(16)}  preprocess ${first} → ${last} threads: ${scaling.toFixed(2)}×${baselineScaling}; goal ≥ 1.8× from 1 to 2`);
    }
    if (ok(pn)) console.log(`  ${'goal'.padEnd(16)}  ${mps(rate(pn))} at ${last} threads: ${rate(pn) >= 2e6 ? 'meets' : 'below'} 2 M events/s (10 M, 12GB) · ${rate(pn) >= 1.5e6 ? 'meets' : 'below'} 1.5 M events/s (100 M, default limit)`);
  }
}

await main();
