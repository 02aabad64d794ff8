/**
 * Prediction quality against known truth (issue #16): does nextbuy rank customers as well as the truth allows,
 * and better than a count model?
 *
 * For each size: bench/known-truth.ts writes events with every customer's true purchase probability per
 * target category; the real pipeline runs on them (`node bin/nextbuy.js run --account kt --date D --conf
 * job.yaml`, a child process, as a user runs it); then, per product, this prints the published AUC (from the
 * committed prediction table, against the truth file's labels) with its 95 % DeLong interval, each model's and
 * each baseline's AUC from the run's report.json, the bench's own count baseline (bench/count-baseline.ts, with
 * a paired interval against the published scores), the Bayes-optimal AUC (the true probabilities against the
 * same labels), and a verdict against the goals:
 *   published ≥ 0.95 × Bayes-optimal on every product;
 *   published ≥ best baseline + 0.01 where a product has ≥ 300 positives.
 * Then the bundled Taobao sample (examples/taobao/job.yaml, date 2017-12-02): published `any` AUC against the
 * report's logistic baseline (goal: published ≥ logistic).
 *
 * report.json is read for what it holds: entries of kind model / ensemble / baseline with metrics.auc, and any
 * interval or verdict fields it may carry (printed as they are); what is absent prints as "–".
 *
 * CLI: node --import tsx bench/quality.ts [--customers 20000,100000] [--seed 7] [--workers N] [--no-taobao] [--keep] [--set key.path=value …]
 *      (--customers 0: the Taobao sample only)
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { parse, stringify } from 'yaml';
import { loadPredictionsIntoDuckDB } from '../coordinator/publish/index.js';
import { aucWithCi, pairedAucDifference, type AucInterval } from './auc-ci.js';
import { countBaselineScores } from './count-baseline.js';
import { generateKnownTruth, type KnownTruth } from './known-truth.js';
import { machineLine } from './machine.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin/nextbuy.js');
const RATIO_GOAL = 0.95;
const MARGIN_GOAL = 0.01;
const MARGIN_MIN_POSITIVES = 300;
const COUNT_BASELINE = 'count-logistic (bench)';

const f = (x: number | null | undefined, digits = 3): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));
const ci = (x: AucInterval | null): string => (x ? `${f(x.auc)} [${f(x.lower)}, ${f(x.upper)}]` : '–');
const signed = (x: AucInterval | null): string =>
  x ? `${x.auc >= 0 ? '+' : ''}${f(x.auc)} [${x.lower >= 0 ? '+' : ''}${f(x.lower)}, ${x.upper >= 0 ? '+' : ''}${f(x.upper)}]` : '–';
const n = (x: number) => x.toLocaleString('en-US');

interface CliRun {
  code: number;
  stdout: string;
  seconds: number;
  logFile: string;
}

/** The real command in a child process; its stderr (logs, progress) goes to a file beside the job. */
function runNextbuy(args: string[], logFile: string): Promise<CliRun> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = createWriteStream(logFile);
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.pipe(log);
    child.on('error', reject);
    child.on('close', (code) => log.end(() => resolve({ code: code ?? -1, stdout, seconds: (performance.now() - t0) / 1000, logFile })));
  });
}

async function tail(file: string, lines = 15): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).map((l) => `    ${l}`).join('\n');
}

/** Published scores by product, customer id → score, read through the manifests. */
async function readPublished(outDir: string, account: string, date: string): Promise<Map<string, Map<string, number>>> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    await loadPredictionsIntoDuckDB(connection, outDir, account, date, 'predictions');
    const reader = await connection.runAndReadAll('SELECT product, CAST(customer_id AS VARCHAR), score FROM predictions');
    const out = new Map<string, Map<string, number>>();
    for (const [product, id, score] of reader.getRows() as [string, string, number][]) {
      let m = out.get(product);
      if (!m) out.set(product, (m = new Map()));
      m.set(id, score);
    }
    return out;
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

// ── report.json, read defensively ────────────────────────────────────────────────────────────────────────
type Json = Record<string, unknown>;
const isObject = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);
const num = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);

interface ReportEntryView {
  name: string;
  kind: string;
  auc: number | null;
  /** An interval the report gives for the AUC, in whatever field it uses. */
  interval: string | null;
}
interface ReportProductView {
  product: string;
  n: number | null;
  positives: number | null;
  entries: ReportEntryView[];
  /** Other product-level fields (verdicts, warnings, champions…), printed as they are. */
  extras: [string, string][];
}

const KNOWN_PRODUCT_KEYS = new Set(['product', 'n', 'positives', 'baseRate', 'ensemble', 'entries', 'bestByAuc']);

/** An interval in any of the obvious shapes: {lower, upper}, {low, high}, [lo, hi]. */
function findInterval(o: Json): string | null {
  for (const [key, v] of Object.entries(o)) {
    if (!/ci|interval/i.test(key)) continue;
    const pair = Array.isArray(v) && v.length === 2 ? [num(v[0]), num(v[1])] : isObject(v) ? [num(v.lower ?? v.low ?? v.lo), num(v.upper ?? v.high ?? v.hi)] : null;
    if (pair && pair[0] !== null && pair[1] !== null) return `[${f(pair[0])}, ${f(pair[1])}]`;
  }
  return null;
}

function short(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 240 ? `${s.slice(0, 237)}…` : s;
}

async function readReport(file: string): Promise<Map<string, ReportProductView> | null> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    return null;
  }
  const out = new Map<string, ReportProductView>();
  const products = isObject(raw) && Array.isArray(raw.products) ? raw.products : [];
  for (const p of products) {
    if (!isObject(p) || typeof p.product !== 'string') continue;
    const entries: ReportEntryView[] = [];
    for (const e of Array.isArray(p.entries) ? p.entries : []) {
      if (!isObject(e)) continue;
      const metrics = isObject(e.metrics) ? e.metrics : {};
      entries.push({
        name: String(e.name ?? '?'),
        kind: String(e.kind ?? '?'),
        auc: num(metrics.auc ?? e.auc),
        interval: findInterval(metrics) ?? findInterval(e),
      });
    }
    const extras = Object.entries(p).filter(([k]) => !KNOWN_PRODUCT_KEYS.has(k)).map(([k, v]) => [k, short(v)] as [string, string]);
    out.set(p.product, { product: p.product, n: num(p.n), positives: num(p.positives), entries, extras });
  }
  return out;
}

const entryText = (e: ReportEntryView) => `${e.name} ${f(e.auc)}${e.interval ? ` ${e.interval}` : ''}`;

// ── known truth ───────────────────────────────────────────────────────────────────────────────────────────
interface Verdict {
  product: string;
  ok: boolean;
  line: string;
}

/** `--set a.b=v` overrides: the job file's key path a.b set to v (parsed as YAML), for comparing settings. */
type JobOverrides = [string[], unknown][];

function applyOverrides(job: Json, overrides: JobOverrides): void {
  for (const [keys, value] of overrides) {
    let at = job;
    for (const k of keys.slice(0, -1)) at = (isObject(at[k]) ? at[k] : (at[k] = {})) as Json;
    at[keys.at(-1)!] = value;
  }
}

async function knownTruthSize(customers: number, seed: number, workers: number | null, keep: boolean, overrides: JobOverrides): Promise<Verdict[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-quality-'));
  console.log(`── known truth, ${n(customers)} customers (seed ${seed}) · folder ${dir}`);
  try {
    const t0 = performance.now();
    const kt = generateKnownTruth({ customers, out: dir, seed });
    if (overrides.length > 0) {
      const job = parse(await readFile(kt.jobFile, 'utf8')) as Json;
      applyOverrides(job, overrides);
      await writeFile(kt.jobFile, stringify(job));
    }
    console.log(
      `generated   ${n(kt.events)} events in ${((performance.now() - t0) / 1000).toFixed(1)} s · ${n(kt.customers)} customers known as of ${kt.asOf} · ` +
        `${(100 * kt.shareOver50).toFixed(0)} % with > 50 events in the ${kt.lookbackDays}-day lookback (max ${n(kt.maxEventsInLookback)}) · horizon ${kt.horizonDays} days`,
    );
    const args = ['run', '--account', kt.account, '--date', kt.asOf, '--conf', kt.jobFile, ...(workers ? ['--workers', String(workers)] : [])];
    const run = await runNextbuy(args, path.join(dir, 'nextbuy.log'));
    console.log(`pipeline    nextbuy ${args.join(' ')} · exit ${run.code} · ${run.seconds.toFixed(0)} s`);
    if (run.code !== 0) {
      console.log(`!! the run failed; the end of its log (${run.logFile}):\n${await tail(run.logFile)}`);
      return kt.products.map((product) => ({ product, ok: false, line: `${product}: the run failed (exit ${run.code})` }));
    }
    console.log(run.stdout.trimEnd().split('\n').map((l) => `  | ${l}`).join('\n'));
    return await compare(kt, path.join(dir, 'out'));
  } finally {
    if (keep) console.log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

async function compare(kt: KnownTruth, outDir: string): Promise<Verdict[]> {
  const published = await readPublished(outDir, kt.account, kt.asOf);
  const report = await readReport(path.join(outDir, 'runs', `account=${kt.account}`, `date=${kt.asOf}`, 'report', 'report.json'));
  if (!report) console.log('report.json: absent or unreadable (every report figure below prints as –)');
  const K = kt.products.length;
  const rows = kt.score.customerIds.length;
  const verdicts: Verdict[] = [];
  for (const [k, product] of kt.products.entries()) {
    const labels = Int8Array.from({ length: rows }, (_, r) => kt.score.labels[r * K + k]!);
    const truth = Float64Array.from({ length: rows }, (_, r) => kt.score.probability[r * K + k]!);
    let positives = 0;
    for (const y of labels) positives += y;
    const table = published.get(product) ?? new Map<string, number>();
    const scores = new Float32Array(rows);
    let missing = 0;
    for (let r = 0; r < rows; r++) {
      const s = table.get(String(kt.score.customerIds[r]));
      if (s === undefined) missing++;
      else scores[r] = s;
    }
    const extra = table.size - (rows - missing);
    const bayes = aucWithCi(labels, truth);
    const pub = missing === 0 ? aucWithCi(labels, scores) : null;
    const counts = countBaselineScores(kt.train, kt.score, k, K, kt.lookbackDays);
    const countAuc = aucWithCi(labels, counts);
    const vsCounts = pub ? pairedAucDifference(labels, scores, counts) : null;
    const rp = report?.get(product);
    const models = rp?.entries.filter((e) => e.kind === 'model') ?? [];
    const ensembles = rp?.entries.filter((e) => e.kind !== 'model' && e.kind !== 'baseline') ?? [];
    const baselines = rp?.entries.filter((e) => e.kind === 'baseline') ?? [];
    const bestReportBaseline = baselines.reduce<ReportEntryView | null>((best, e) => (e.auc !== null && (best === null || e.auc > best.auc!) ? e : best), null);
    const best =
      bestReportBaseline && bestReportBaseline.auc! > (countAuc?.auc ?? -1)
        ? { name: bestReportBaseline.name, auc: bestReportBaseline.auc! }
        : countAuc
          ? { name: COUNT_BASELINE, auc: countAuc.auc }
          : null;
    const ratio = pub && bayes ? pub.auc / bayes.auc : null;

    console.log(`product ${product}`);
    const count = (x: number | null) => (x === null ? '–' : n(x));
    const differs = rp && rp.positives !== null && rp.positives !== positives ? '  !! differs from the truth file' : '';
    const reportCounts = rp ? `${count(rp.n)} customers, ${count(rp.positives)} positives${differs}` : '–';
    console.log(`  customers ${n(rows)} · positives ${n(positives)} (truth file) · report: ${reportCounts}`);
    if (missing > 0 || extra > 0) console.log(`  !! published table: ${n(missing)} truth customers missing, ${n(extra)} customers not in the truth file`);
    console.log(`  Bayes-optimal AUC      ${ci(bayes)}`);
    console.log(`  published AUC          ${ci(pub)}   = ${f(ratio)} × Bayes-optimal`);
    console.log(`  models (report)        ${models.length > 0 ? models.map(entryText).join(' · ') : '–'}`);
    console.log(`  ensemble, other (rep.) ${ensembles.length > 0 ? ensembles.map(entryText).join(' · ') : '–'}`);
    console.log(`  baselines (report)     ${baselines.length > 0 ? baselines.map(entryText).join(' · ') : '–'}`);
    console.log(`  count-logistic (bench) ${ci(countAuc)} = ${f(countAuc && bayes ? countAuc.auc / bayes.auc : null)} × Bayes-optimal`);
    console.log(`  published − count-logistic (bench, paired): ${signed(vsCounts)}`);
    const vsBest = !pub || !best ? '–' : best.name === COUNT_BASELINE ? signed(vsCounts) : `${pub.auc - best.auc >= 0 ? '+' : ''}${f(pub.auc - best.auc)} (no paired interval: report.json has no per-customer scores)`;
    console.log(`  published − best baseline (${best?.name ?? '–'}): ${vsBest}`);
    for (const [key, value] of rp?.extras ?? []) console.log(`  report ${key}: ${value}`);

    const ratioOk = ratio !== null && ratio >= RATIO_GOAL;
    const marginApplies = positives >= MARGIN_MIN_POSITIVES;
    const marginOk = !marginApplies || (pub !== null && best !== null && pub.auc >= best.auc + MARGIN_GOAL);
    const ok = ratioOk && marginOk;
    const line =
      `${product}: published ${f(pub?.auc)} = ${f(ratio)} × Bayes-optimal (goal ≥ ${RATIO_GOAL}: ${ratioOk ? 'met' : 'MISSED'}); ` +
      (marginApplies
        ? `vs best baseline ${best?.name ?? '–'} ${f(best?.auc)}: ${pub && best ? `${pub.auc - best.auc >= 0 ? '+' : ''}${f(pub.auc - best.auc)}` : '–'} (goal ≥ +${MARGIN_GOAL}: ${marginOk ? 'met' : 'MISSED'})`
        : `${positives} positives < ${MARGIN_MIN_POSITIVES}: the baseline margin does not apply`);
    console.log(`  verdict: ${ok ? 'MET' : 'NOT MET'} · ${line}`);
    verdicts.push({ product, ok, line });
  }
  return verdicts;
}

// ── the Taobao sample ─────────────────────────────────────────────────────────────────────────────────────
const TAOBAO_DATE = '2017-12-02';

async function taobao(workers: number | null, keep: boolean): Promise<Verdict | null> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-quality-taobao-'));
  console.log(`── Taobao sample (examples/taobao/job.yaml, date ${TAOBAO_DATE}) · folder ${dir}`);
  try {
    const job = parse(await readFile(path.join(ROOT, 'examples/taobao/job.yaml'), 'utf8')) as Json;
    job.output = { dir: 'out' };
    await copyFile(path.join(ROOT, 'examples/taobao/events.csv.gz'), path.join(dir, 'events.csv.gz'));
    const conf = path.join(dir, 'job.yaml');
    await writeFile(conf, stringify(job));
    const account = String(job.account);
    const args = ['run', '--account', account, '--date', TAOBAO_DATE, '--conf', conf, ...(workers ? ['--workers', String(workers)] : [])];
    const run = await runNextbuy(args, path.join(dir, 'nextbuy.log'));
    console.log(`pipeline    nextbuy run --account ${account} --date ${TAOBAO_DATE} · exit ${run.code} · ${run.seconds.toFixed(0)} s`);
    if (run.code !== 0) {
      console.log(`!! the run failed; the end of its log:\n${await tail(run.logFile)}`);
      return { product: 'taobao any', ok: false, line: `taobao any: the run failed (exit ${run.code})` };
    }
    const outDir = path.join(dir, 'out');
    const published = (await readPublished(outDir, account, TAOBAO_DATE)).get('any');
    const report = await readReport(path.join(outDir, 'runs', `account=${account}`, `date=${TAOBAO_DATE}`, 'report', 'report.json'));
    const rp = report?.get('any');
    if (!published) {
      console.log('!! no published `any` partition');
      return { product: 'taobao any', ok: false, line: 'taobao any: nothing published' };
    }
    // Labels as the pipeline defines them: a valid purchase in [D, D + horizon), within the job's valid range.
    const labels = await taobaoLabels(job, path.join(dir, 'events.csv.gz'), [...published.keys()]);
    const ids = [...published.keys()];
    const y = Int8Array.from(ids, (id) => (labels.has(id) ? 1 : 0));
    const pub = aucWithCi(y, Float32Array.from(ids, (id) => published.get(id)!));
    const logistic = (rp?.entries ?? []).filter((e) => e.kind === 'baseline' && /logistic/i.test(e.name) && e.auc !== null);
    const bestLogistic = logistic.reduce<ReportEntryView | null>((b, e) => (b === null || e.auc! > b.auc! ? e : b), null);
    console.log(`  product      customers positives   published AUC [95 % CI]    models / ensemble / baselines (report)`);
    console.log(
      `  any       ${n(ids.length).padStart(12)} ${n(labels.size).padStart(9)}   ${ci(pub).padEnd(26)} ${(rp?.entries ?? []).map(entryText).join(' · ') || '–'}`,
    );
    if (rp?.positives !== null && rp?.positives !== undefined && rp.positives !== labels.size) console.log(`  !! the report counts ${rp.positives} positives, this bench ${labels.size}`);
    for (const [key, value] of rp?.extras ?? []) console.log(`  report ${key}: ${value}`);
    const ok = pub !== null && bestLogistic !== null && pub.auc >= bestLogistic.auc!;
    const line = `taobao any: published ${f(pub?.auc)} vs logistic baseline ${bestLogistic ? `${bestLogistic.name} ${f(bestLogistic.auc)}` : '–'} (goal published ≥ logistic: ${ok ? 'met' : 'MISSED'})`;
    console.log(`  verdict: ${ok ? 'MET' : 'NOT MET'} · ${line}`);
    return { product: 'taobao any', ok, line };
  } finally {
    if (keep) console.log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

async function taobaoLabels(job: Json, file: string, ids: string[]): Promise<Set<string>> {
  const columns = job.columns as Json;
  const events = job.events as Json;
  const validation = (job.validation ?? {}) as Json;
  const horizon = Number((job.label as Json).horizonDays);
  const from = Date.parse(`${TAOBAO_DATE}T00:00:00Z`) / 1000;
  const to = from + horizon * 86_400;
  const lo = validation.validFrom ? Date.parse(String(validation.validFrom)) / 1000 : -Infinity;
  const hi = validation.validTo ? Date.parse(String(validation.validTo)) / 1000 : Infinity;
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const q = (s: unknown) => `"${String(s).replaceAll('"', '""')}"`;
    const reader = await connection.runAndReadAll(
      `SELECT DISTINCT CAST(${q(columns.customer)} AS VARCHAR) FROM read_csv('${file.replaceAll("'", "''")}')
       WHERE ${q(columns.eventType)} = '${String(events.purchase)}'
         AND ${q(columns.time)} >= ${Math.max(from, lo)} AND ${q(columns.time)} < ${Math.min(to, hi)}`,
    );
    const known = new Set(ids);
    return new Set((reader.getRows() as [string][]).map((r) => r[0]).filter((id) => known.has(id)));
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

// ── main ──────────────────────────────────────────────────────────────────────────────────────────────────
function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const sizes = (flag(args, 'customers') ?? '20000,100000').split(',').map(Number);
  const seed = Number(flag(args, 'seed') ?? '7');
  const workers = flag(args, 'workers') ? Number(flag(args, 'workers')) : null;
  const keep = args.includes('--keep');
  const overrides: JobOverrides = args.flatMap((a, i) => (a === '--set' && args[i + 1]?.includes('=') ? [args[i + 1]!] : [])).map((kv) => {
    const eq = kv.indexOf('=');
    return [kv.slice(0, eq).split('.'), parse(kv.slice(eq + 1)) as unknown];
  });
  if (sizes.some((s) => !Number.isInteger(s) || s < 0) || !Number.isInteger(seed)) {
    console.error('usage: node --import tsx bench/quality.ts [--customers 20000,100000] [--seed 7] [--workers N] [--no-taobao] [--keep] [--set key.path=value …]');
    process.exit(2);
  }
  console.log(`quality against known truth · ${machineLine()}`);
  if (overrides.length > 0) console.log(`job overrides (known truth): ${overrides.map(([k, v]) => `${k.join('.')}=${JSON.stringify(v)}`).join(' ')}`);
  console.log(`goals: published ≥ ${RATIO_GOAL} × Bayes-optimal AUC on every product; ≥ best baseline + ${MARGIN_GOAL} where a product has ≥ ${MARGIN_MIN_POSITIVES} positives; Taobao sample: published any ≥ logistic baseline\n`);
  const verdicts: Verdict[] = [];
  for (const size of sizes.filter((s) => s > 0)) {
    for (const v of await knownTruthSize(size, seed, workers, keep, overrides)) verdicts.push({ ...v, line: `${n(size)} customers · ${v.line}` });
    console.log('');
  }
  if (!args.includes('--no-taobao')) {
    const v = await taobao(workers, keep);
    if (v) verdicts.push(v);
    console.log('');
  }
  const met = verdicts.filter((v) => v.ok).length;
  console.log(`verdict: ${met} of ${verdicts.length} goals met`);
  for (const v of verdicts) console.log(`  ${v.ok ? 'met   ' : 'MISSED'} ${v.line}`);
}

await main();
