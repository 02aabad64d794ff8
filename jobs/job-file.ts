/**
 * Loads a job file (YAML) and compiles it into a Job: every field checked at load, with an error that
 * names the file and the field, every default filled in, paths made absolute, dates made epoch ms.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parse, YAMLParseError } from 'yaml';
import { JobFileError } from '../core/errors.js';
import { parseDuration } from '../core/duration.js';
import { DEFAULT_REPLICAS, type Architecture, type Job } from './job.js';

const ACCOUNT_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const DATE_PATTERN = /^\d{4}-\d{2}-\d{2}$/;
const COLUMN_PATTERN = /^[A-Za-z_][A-Za-z0-9_ .-]{0,127}$/;
const MEMORY_PATTERN = /^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i;

/**
 * Largest job file read. Real ones are a few KiB; the YAML parser is quadratic on some malformed input
 * (found by test/fuzz-job-file.test.ts: 37 KB of commas in a flow mapping took 3 s, 85 KB took 18 s).
 */
export const MAX_JOB_FILE_BYTES = 32 * 1024;

export const DEFAULT_ACTIONS = [
  { name: 'in_store', minScore: 0.4 },
  { name: 'sms', minScore: 0.2 },
];

/** Reads and compiles a job file. Throws JobFileError naming the field on any problem. */
export async function loadJob(file: string): Promise<Job> {
  const absolute = path.resolve(file);
  let text: string;
  try {
    const info = await stat(absolute);
    if (info.isFile() && info.size > MAX_JOB_FILE_BYTES) {
      throw new JobFileError(absolute, '(file)', `is ${info.size} bytes, more than a job file may be (${MAX_JOB_FILE_BYTES}): is --conf the right file?`);
    }
    text = await readFile(absolute, 'utf8');
  } catch (e) {
    if (e instanceof JobFileError) throw e;
    throw new JobFileError(absolute, '(file)', `cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}. Pass an existing job file with --conf`);
  }
  return compileJob(parseYaml(absolute, text), absolute);
}

function parseYaml(file: string, text: string): unknown {
  try {
    // prettyErrors would compute a position for each of the parser's errors: quadratic on malformed input.
    return parse(text, { maxAliasCount: 100, prettyErrors: false });
  } catch (e) {
    if (e instanceof YAMLParseError) {
      const at = linePos(text, e.pos[0]);
      throw new JobFileError(file, `(line ${at.line}, column ${at.col})`, `is not valid YAML: ${e.message.split('\n')[0]} at line ${at.line}, column ${at.col}`);
    }
    throw new JobFileError(file, '(yaml)', `is not valid YAML: ${(e as Error).message}`);
  }
}

function linePos(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, Math.max(0, offset));
  const lineStart = before.lastIndexOf('\n') + 1;
  return { line: before.split('\n').length, col: offset - lineStart + 1 };
}

/** Compiles an already parsed job file; `file` is used in errors and to resolve relative paths. */
export function compileJob(raw: unknown, file: string): Job {
  const f = new Fields(file);
  const root = f.object(raw, '(root)', true)!;
  f.noUnknown(root, '', [
    'account', 'input', 'columns', 'events', 'validation', 'label', 'sequence', 'vocabulary', 'products',
    'sampling', 'shards', 'cluster', 'model', 'tuning', 'ensemble', 'actions', 'output', 'resources', 'security',
  ]);
  const dir = path.dirname(file);

  const account = f.string(root.account, 'account', { required: true, pattern: ACCOUNT_PATTERN, hint: 'lowercase letters, digits, "-" and "_", starting with a letter or digit' })!;

  const input = f.object(root.input, 'input', true)!;
  f.noUnknown(input, 'input', ['path', 'format', 'timeFormat']);
  const inputPath = f.string(input.path, 'input.path', { required: true, pattern: SAFE_PATH, hint: 'a path without control characters' })!;
  const format = (f.oneOf(input.format, 'input.format', ['csv', 'parquet']) ?? inferFormat(f, inputPath)) as 'csv' | 'parquet';
  const timeFormat = (f.oneOf(input.timeFormat, 'input.timeFormat', ['auto', 'epoch_seconds', 'epoch_millis', 'iso']) ?? 'auto') as Job['input']['timeFormat'];

  const columns = f.object(root.columns, 'columns', true)!;
  f.noUnknown(columns, 'columns', ['customer', 'time', 'eventType', 'item', 'category', 'numeric']);
  const column = (k: string, required: boolean) =>
    f.string(columns[k], `columns.${k}`, { required, pattern: COLUMN_PATTERN, hint: 'a column name of the input' }) ?? null;
  const numeric = (f.array(columns.numeric, 'columns.numeric') ?? []).map((n, i) => {
    const o = f.object(n, `columns.numeric[${i}]`, true)!;
    f.noUnknown(o, `columns.numeric[${i}]`, ['column', 'min']);
    return {
      column: f.string(o.column, `columns.numeric[${i}].column`, { required: true, pattern: COLUMN_PATTERN, hint: 'a column name of the input' })!,
      min: f.number(o.min, `columns.numeric[${i}].min`) ?? null,
    };
  });

  const events = f.object(root.events, 'events', true)!;
  f.noUnknown(events, 'events', ['types', 'purchase']);
  const types = (f.array(events.types, 'events.types', true) ?? []).map((t, i) => f.string(t, `events.types[${i}]`, { required: true })!);
  if (types.length === 0) f.fail('events.types', 'must list at least one event type');
  if (new Set(types).size !== types.length) f.fail('events.types', 'lists an event type twice');
  const purchase = f.string(events.purchase, 'events.purchase', { required: true })!;
  if (!types.includes(purchase)) f.fail('events.purchase', `must be one of events.types (${types.join(', ')}), got "${purchase}"`);

  const validation = f.object(root.validation, 'validation') ?? {};
  f.noUnknown(validation, 'validation', ['validFrom', 'validTo', 'maxRejectedShare']);
  const validFromMs = f.instant(validation.validFrom, 'validation.validFrom');
  const validToMs = f.instant(validation.validTo, 'validation.validTo');
  if (validFromMs !== null && validToMs !== null && validToMs <= validFromMs) f.fail('validation.validTo', 'must be after validation.validFrom');

  const label = f.object(root.label, 'label', true)!;
  f.noUnknown(label, 'label', ['horizonDays']);
  const sequence = f.object(root.sequence, 'sequence') ?? {};
  f.noUnknown(sequence, 'sequence', ['lookbackDays', 'maxLength']);
  const vocabulary = f.object(root.vocabulary, 'vocabulary') ?? {};
  f.noUnknown(vocabulary, 'vocabulary', ['minCount', 'maxSize']);

  const products = f.object(root.products, 'products') ?? {};
  f.noUnknown(products, 'products', ['overall', 'topCategories', 'categories']);
  const categoryList = (f.array(products.categories, 'products.categories') ?? []).map((c, i) =>
    f.string(typeof c === 'number' ? String(c) : c, `products.categories[${i}]`, { required: true, pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, hint: 'letters, digits, "_", "-", "."' })!,
  );
  const overall = f.boolean(products.overall, 'products.overall') ?? true;
  const topCategories = f.integer(products.topCategories, 'products.topCategories', { min: 0, max: 1000 }) ?? 0;
  const category = column('category', false);
  if ((categoryList.length > 0 || topCategories > 0) && category === null) {
    f.fail('products', 'models categories but columns.category is not set: map the category column or set products.topCategories: 0 and products.categories: []');
  }
  if (!overall && categoryList.length === 0 && topCategories === 0) {
    f.fail('products', 'models nothing: set overall: true, topCategories or categories');
  }

  const sampling = f.object(root.sampling, 'sampling') ?? {};
  f.noUnknown(sampling, 'sampling', ['negativeRate']);
  const shards = f.object(root.shards, 'shards') ?? {};
  f.noUnknown(shards, 'shards', ['count', 'batchRows']);

  const cluster = f.object(root.cluster, 'cluster') ?? {};
  f.noUnknown(cluster, 'cluster', ['workers', 'addresses', 'inFlightPerWorker', 'heartbeatTimeout', 'maxAttemptsPerShard']);
  const addresses = (f.array(cluster.addresses, 'cluster.addresses') ?? []).map(
    (a, i) => f.string(a, `cluster.addresses[${i}]`, { required: true, pattern: /^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, hint: 'host:port' })!,
  );
  const heartbeat = cluster.heartbeatTimeout ?? '30s';
  const heartbeatTimeoutMs = typeof heartbeat === 'string' || typeof heartbeat === 'number' ? parseDuration(heartbeat) : undefined;
  if (heartbeatTimeoutMs === undefined || heartbeatTimeoutMs < 100) f.fail('cluster.heartbeatTimeout', `must be a duration like '30s' (at least 100ms), got "${String(heartbeat)}"`);

  const model = f.object(root.model, 'model') ?? {};
  f.noUnknown(model, 'model', [
    'architectures', 'embeddingDim', 'hiddenUnits', 'denseUnits', 'learningRate', 'batchSize', 'epochs', 'patience',
    'replicas', 'validationShare', 'classWeight', 'seed',
  ]);
  const architectures = (f.array(model.architectures, 'model.architectures') ?? ['lstm', 'attention']).map(
    (a, i) => f.oneOf(a, `model.architectures[${i}]`, ['lstm', 'attention']) as Architecture,
  );
  if (architectures.length === 0) f.fail('model.architectures', "must name at least one of 'lstm', 'attention'");
  let classWeight: number | 'balanced' = 'balanced';
  if (model.classWeight !== undefined && model.classWeight !== 'balanced') {
    classWeight = f.number(model.classWeight, 'model.classWeight', { min: 0.001, max: 10_000, hint: "a positive number or 'balanced'" })!;
  }

  const tuning = f.object(root.tuning, 'tuning') ?? {};
  f.noUnknown(tuning, 'tuning', ['trials']);
  const ensemble = f.object(root.ensemble, 'ensemble') ?? {};
  f.noUnknown(ensemble, 'ensemble', ['method']);

  const actions = root.actions === undefined
    ? DEFAULT_ACTIONS
    : (f.array(root.actions, 'actions') ?? []).map((a, i) => {
        const o = f.object(a, `actions[${i}]`, true)!;
        f.noUnknown(o, `actions[${i}]`, ['name', 'minScore']);
        return {
          name: f.string(o.name, `actions[${i}].name`, { required: true, pattern: /^[a-z][a-z0-9_]{0,31}$/, hint: 'lowercase letters, digits and "_"' })!,
          minScore: f.number(o.minScore, `actions[${i}].minScore`, { required: true, min: 0, max: 1 })!,
        };
      });
  if (actions.some((a) => a.name === 'none')) f.fail('actions', 'may not name an action "none": it is what customers below every threshold get');
  if (new Set(actions.map((a) => a.name)).size !== actions.length) f.fail('actions', 'names an action twice');

  const output = f.object(root.output, 'output') ?? {};
  f.noUnknown(output, 'output', ['dir']);
  const resources = f.object(root.resources, 'resources') ?? {};
  f.noUnknown(resources, 'resources', ['memoryLimit', 'threads']);
  const security = compileSecurity(f, root.security, dir, inputPath);
  const inputAbsolute = path.resolve(dir, inputPath);
  if (!security.inputRoots.some((r) => isInside(r, inputAbsolute))) {
    f.fail('input.path', `"${inputPath}" is outside the folders this job may read (${security.inputRoots.join(', ')}): move the input there or list its folder in security.inputRoots`);
  }

  return {
    account,
    file,
    input: { path: inputAbsolute, format, timeFormat },
    columns: {
      customer: column('customer', true)!,
      time: column('time', true)!,
      eventType: column('eventType', true)!,
      item: column('item', false),
      category,
      numeric,
    },
    events: { types, purchase },
    validation: {
      validFromMs,
      validToMs,
      maxRejectedShare: f.number(validation.maxRejectedShare, 'validation.maxRejectedShare', { min: 0, max: 1 }) ?? 0.01,
    },
    label: { horizonDays: f.integer(label.horizonDays, 'label.horizonDays', { required: true, min: 1, max: 366, hint: 'a whole number of days ≥ 1' })! },
    sequence: {
      lookbackDays: f.integer(sequence.lookbackDays, 'sequence.lookbackDays', { min: 1, max: 3660 }) ?? 30,
      maxLength: f.integer(sequence.maxLength, 'sequence.maxLength', { min: 1, max: 10_000 }) ?? 50,
    },
    vocabulary: {
      minCount: f.integer(vocabulary.minCount, 'vocabulary.minCount', { min: 1 }) ?? 2,
      maxSize: f.integer(vocabulary.maxSize, 'vocabulary.maxSize', { min: 1, max: 10_000_000 }) ?? 50_000,
    },
    products: { overall, topCategories, categories: [...new Set(categoryList)] },
    sampling: { negativeRate: f.number(sampling.negativeRate, 'sampling.negativeRate', { min: 0.0001, max: 1, hint: 'a share in (0, 1]' }) ?? 1 },
    shards: {
      count: f.integer(shards.count, 'shards.count', { min: 1, max: 100_000 }) ?? 8,
      batchRows: f.integer(shards.batchRows, 'shards.batchRows', { min: 1, max: 1_000_000 }) ?? 4096,
    },
    cluster: {
      workers: f.integer(cluster.workers, 'cluster.workers', { min: 1, max: 1024 }) ?? 2,
      addresses,
      inFlightPerWorker: f.integer(cluster.inFlightPerWorker, 'cluster.inFlightPerWorker', { min: 1, max: 64 }) ?? 2,
      heartbeatTimeoutMs: heartbeatTimeoutMs!,
      maxAttemptsPerShard: f.integer(cluster.maxAttemptsPerShard, 'cluster.maxAttemptsPerShard', { min: 1, max: 100 }) ?? 3,
    },
    model: {
      architectures: [...new Set(architectures)],
      embeddingDim: f.integer(model.embeddingDim, 'model.embeddingDim', { min: 1, max: 4096 }) ?? 16,
      hiddenUnits: f.integer(model.hiddenUnits, 'model.hiddenUnits', { min: 1, max: 4096 }) ?? 32,
      denseUnits: f.integer(model.denseUnits, 'model.denseUnits', { min: 1, max: 4096 }) ?? 16,
      learningRate: f.number(model.learningRate, 'model.learningRate', { min: 1e-7, max: 10 }) ?? 0.005,
      batchSize: f.integer(model.batchSize, 'model.batchSize', { min: 1, max: 1_000_000 }) ?? 128,
      epochs: f.integer(model.epochs, 'model.epochs', { min: 1, max: 10_000 }) ?? 8,
      patience: f.integer(model.patience, 'model.patience', { min: 1, max: 10_000 }) ?? 2,
      replicas: f.integer(model.replicas, 'model.replicas', { min: 1, max: 4096 }) ?? DEFAULT_REPLICAS,
      validationShare: f.number(model.validationShare, 'model.validationShare', { min: 0.01, max: 0.9 }) ?? 0.2,
      classWeight,
      seed: f.integer(model.seed, 'model.seed', { min: 0, max: 2 ** 31 - 1 }) ?? 7,
    },
    tuning: { trials: f.integer(tuning.trials, 'tuning.trials', { min: 0, max: 10_000 }) ?? 0 },
    ensemble: { method: (f.oneOf(ensemble.method, 'ensemble.method', ['mean', 'fitted']) ?? 'mean') as 'mean' | 'fitted' },
    actions: [...actions].sort((a, b) => b.minScore - a.minScore),
    output: { dir: path.resolve(dir, f.string(output.dir, 'output.dir') ?? 'out') },
    resources: {
      memoryLimit: f.string(resources.memoryLimit, 'resources.memoryLimit', { pattern: MEMORY_PATTERN, hint: "a size like '2GB' or '512MiB'" }) ?? '2GB',
      threads: f.integer(resources.threads, 'resources.threads', { min: 1, max: 1024 }) ?? null,
    },
    security,
  };
}

/** No control characters (NUL, newlines, escapes): they have no place in a file name and confuse logs and SQL. */
const SAFE_PATH = /^[^\x00-\x1f\x7f]{1,4096}$/;

function compileSecurity(f: Fields, raw: unknown, dir: string, inputPath: string): NonNullable<Job['security']> {
  const security = f.object(raw, 'security') ?? {};
  f.noUnknown(security, 'security', ['tls', 'allowPlaintext', 'inputRoots']);
  let tls: NonNullable<Job['security']>['tls'] = null;
  const t = f.object(security.tls, 'security.tls');
  if (t) {
    f.noUnknown(t, 'security.tls', ['ca', 'cert', 'key']);
    const file = (k: 'ca' | 'cert' | 'key') =>
      path.resolve(dir, f.string(t[k], `security.tls.${k}`, { required: true, pattern: SAFE_PATH, hint: 'a PEM file path' })!);
    tls = { ca: file('ca'), cert: file('cert'), key: file('key') };
  }
  // Without inputRoots: the job folder, and an absolute input.path (an explicit choice) up to its first glob.
  // Either way a relative path cannot climb out, and no symlink under the input may lead elsewhere.
  const defaults = [dir, ...(path.isAbsolute(inputPath) ? [globPrefix(path.resolve(inputPath))] : [])];
  const listed = f.array(security.inputRoots, 'security.inputRoots');
  const roots = listed
    ? listed.map((r, i) => path.resolve(dir, f.string(r, `security.inputRoots[${i}]`, { required: true, pattern: SAFE_PATH, hint: 'a folder path' })!))
    : defaults;
  if (roots.length === 0) f.fail('security.inputRoots', 'must list at least one folder (leave it out to mean the job file\'s folder)');
  return { tls, allowPlaintext: f.boolean(security.allowPlaintext, 'security.allowPlaintext') ?? false, inputRoots: roots };
}

/** The folders of `p` before its first segment with a glob character (`p` itself without one). */
function globPrefix(p: string): string {
  const parts = p.split(path.sep);
  const first = parts.findIndex((seg) => /[*?[{]/.test(seg));
  return first < 0 ? p : parts.slice(0, first).join(path.sep) || path.sep;
}

/** Whether `p` is `root` or below it (lexically; symlinks are checked where files are opened). */
export function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

function inferFormat(f: Fields, p: string): 'csv' | 'parquet' {
  const lower = p.toLowerCase();
  if (/\.parquet$/.test(lower)) return 'parquet';
  if (/\.(csv|tsv)(\.gz|\.zst)?$/.test(lower)) return 'csv';
  return f.fail('input.format', `cannot be inferred from "${p}": set input.format to csv or parquet`);
}

type Obj = Record<string, unknown>;
interface Check {
  required?: boolean;
  min?: number;
  max?: number;
  pattern?: RegExp;
  hint?: string;
}

/** Typed readers for one job file: each names the field it reads in the error it throws. */
class Fields {
  constructor(private readonly file: string) {}

  fail(field: string, problem: string): never {
    throw new JobFileError(this.file, field, problem);
  }

  private missing(v: unknown, field: string, required: boolean | undefined): boolean {
    if (v === undefined || v === null) {
      if (required) this.fail(field, 'is required');
      return true;
    }
    return false;
  }

  object(v: unknown, field: string, required = false): Obj | undefined {
    if (this.missing(v, field, required)) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(field, `must be a mapping, got ${describe(v)}`);
    return v as Obj;
  }

  array(v: unknown, field: string, required = false): unknown[] | undefined {
    if (this.missing(v, field, required)) return undefined;
    if (!Array.isArray(v)) this.fail(field, `must be a list, got ${describe(v)}`);
    return v;
  }

  noUnknown(o: Obj, prefix: string, known: string[]): void {
    for (const key of Object.keys(o)) {
      if (!known.includes(key)) {
        const field = prefix ? `${prefix}.${key}` : key;
        this.fail(field, `is not a known field; known here: ${known.join(', ')}`);
      }
    }
  }

  string(v: unknown, field: string, c: Check = {}): string | undefined {
    if (this.missing(v, field, c.required)) return undefined;
    if (typeof v !== 'string' || v.length === 0) this.fail(field, `must be a non-empty string, got ${describe(v)}`);
    if (c.pattern && !c.pattern.test(v)) this.fail(field, `must be ${c.hint ?? `like ${c.pattern}`}, got "${v}"`);
    return v;
  }

  number(v: unknown, field: string, c: Check = {}): number | undefined {
    if (this.missing(v, field, c.required)) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(field, `must be ${c.hint ?? 'a number'}, got ${describe(v)}`);
    if (c.min !== undefined && v < c.min) this.fail(field, `must be ≥ ${c.min}, got ${v}`);
    if (c.max !== undefined && v > c.max) this.fail(field, `must be ≤ ${c.max}, got ${v}`);
    return v;
  }

  integer(v: unknown, field: string, c: Check = {}): number | undefined {
    const n = this.number(v, field, { ...c, hint: c.hint ?? 'a whole number' });
    if (n !== undefined && !Number.isInteger(n)) this.fail(field, `must be ${c.hint ?? 'a whole number'}, got ${n}`);
    return n;
  }

  boolean(v: unknown, field: string): boolean | undefined {
    if (this.missing(v, field, false)) return undefined;
    if (typeof v !== 'boolean') this.fail(field, `must be true or false, got ${describe(v)}`);
    return v;
  }

  oneOf(v: unknown, field: string, allowed: string[]): string | undefined {
    if (this.missing(v, field, false)) return undefined;
    if (typeof v !== 'string' || !allowed.includes(v)) this.fail(field, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describe(v)}`);
    return v;
  }

  /** A date (00:00 UTC) or an ISO 8601 instant with its offset, e.g. 2017-11-25T00:00:00+08:00. */
  instant(v: unknown, field: string): number | null {
    if (typeof v === 'string' && v.includes('T')) {
      const ms = INSTANT_PATTERN.test(v) ? Date.parse(v) : Number.NaN;
      if (Number.isNaN(ms)) this.fail(field, `must be a date YYYY-MM-DD or an instant like 2017-11-25T00:00:00+08:00, got "${v}"`);
      return ms;
    }
    return this.date(v, field);
  }

  date(v: unknown, field: string): number | null {
    if (this.missing(v, field, false)) return null;
    // YAML parses an unquoted 2017-11-25 as a string in the core schema; accept Date objects too.
    const s = v instanceof Date ? v.toISOString().slice(0, 10) : v;
    if (typeof s !== 'string' || !DATE_PATTERN.test(s)) this.fail(field, `must be a date YYYY-MM-DD, got ${describe(v)}`);
    const ms = parseDateMs(s);
    if (ms === null) this.fail(field, `is not a real calendar date: "${s}"`);
    return ms;
  }
}

const INSTANT_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;

/** 'YYYY-MM-DD' → epoch ms at 00:00 UTC, or null when it is not a real date. */
export function parseDateMs(s: string): number | null {
  if (!DATE_PATTERN.test(s)) return null;
  const ms = Date.parse(`${s}T00:00:00Z`);
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== s) return null;
  return ms;
}

export function formatDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (typeof v === 'string') return `"${v.length > 60 ? `${v.slice(0, 60)}…` : v}"`;
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${String(v)}`;
}
