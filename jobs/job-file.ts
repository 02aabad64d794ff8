/**
 * Loads a job file (YAML) and compiles it into a Job: every field checked at load, with an error that
 * names the file and the field, every default filled in, paths made absolute, dates made epoch ms.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parse, YAMLParseError } from 'yaml';
import { JobFileError } from '../core/errors.js';
import { parseDuration } from '../core/duration.js';
import { formatMode, modesOf, PRIVATE_MODES, type FileModes } from '../core/file-modes.js';
import { defaultWindowsDays } from '../coordinator/features/index.js';
import { checkMappings } from './column-expression.js';
import { ARCHITECTURES, DEFAULT_CALIBRATION, DEFAULT_REPLICAS, DEFAULT_CHAMPION, DEFAULT_RETAIN, type ActionRule, type Architecture, type Job, type RetainSettings } from './job.js';

const ACCOUNT_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const DATE_PATTERN = /^\d{4}-\d{2}-\d{2}$/;
/** A column name or a derived-column expression (checked by ./column-expression.ts in loadJob). */
const MAPPING_PATTERN = /^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]{1,2000}$/;
/** A URL scheme (`s3://`, `gs://`, `http://`): nextbuy reads and writes local paths only. */
const URL_SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
const MEMORY_PATTERN = /^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i;

/**
 * Largest job file read. Real ones are a few KiB; the YAML parser is quadratic on some malformed input
 * (found by test/fuzz-job-file.test.ts: 37 KB of commas in a flow mapping took 3 s, 85 KB took 18 s).
 */
export const MAX_JOB_FILE_BYTES = 32 * 1024;

export const DEFAULT_ACTIONS: ActionRule[] = [
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
  const job = compileJob(parseYaml(absolute, text), absolute);
  const problem = await checkMappings(job.columns);
  if (problem) throw new JobFileError(absolute, problem[0], problem[1]);
  return job;
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
    'account', 'input', 'columns', 'events', 'validation', 'label', 'sequence', 'features', 'vocabulary', 'products',
    'sampling', 'training', 'shards', 'cluster', 'model', 'tuning', 'ensemble', 'actions', 'champion', 'calibration', 'output', 'resources', 'security',
  ]);
  const dir = path.dirname(file);

  const account = f.string(root.account, 'account', { required: true, pattern: ACCOUNT_PATTERN, hint: 'lowercase letters, digits, "-" and "_", starting with a letter or digit' })!;

  const input = f.object(root.input, 'input', true)!;
  f.noUnknown(input, 'input', ['path', 'format', 'timeFormat', 'timeZone']);
  const inputPath = f.localPath(input.path, 'input.path', true)!;
  const format = (f.oneOf(input.format, 'input.format', ['csv', 'parquet']) ?? inferFormat(f, inputPath)) as 'csv' | 'parquet';
  const timeFormat = (f.oneOf(input.timeFormat, 'input.timeFormat', ['auto', 'epoch_seconds', 'epoch_millis', 'iso']) ?? 'auto') as Job['input']['timeFormat'];
  const timeZone = f.timeZone(input.timeZone, 'input.timeZone') ?? 'UTC';

  const columns = f.object(root.columns, 'columns', true)!;
  f.noUnknown(columns, 'columns', ['customer', 'time', 'eventType', 'item', 'category', 'numeric']);
  const column = (k: string, required: boolean) =>
    f.string(columns[k], `columns.${k}`, { required, pattern: MAPPING_PATTERN, hint: 'a column name of the input or an expression (at most 2000 characters, no control characters)' }) ?? null;
  const numeric = (f.array(columns.numeric, 'columns.numeric') ?? []).map((n, i) => {
    const o = f.object(n, `columns.numeric[${i}]`, true)!;
    f.noUnknown(o, `columns.numeric[${i}]`, ['column', 'min']);
    return {
      column: f.string(o.column, `columns.numeric[${i}].column`, { required: true, pattern: MAPPING_PATTERN, hint: 'a column name of the input or an expression' })!,
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
  f.noUnknown(validation, 'validation', ['validFrom', 'validTo', 'maxRejectedShare', 'maxStaleness', 'minLastDayShare']);
  const staleness = validation.maxStaleness ?? '2d';
  const maxStalenessMs = typeof staleness === 'string' || typeof staleness === 'number' ? parseDuration(staleness) : undefined;
  if (maxStalenessMs === undefined || maxStalenessMs < 0) f.fail('validation.maxStaleness', `must be a duration like '2d' or '36h', got ${describe(staleness)}`);
  const validFromMs = f.instant(validation.validFrom, 'validation.validFrom');
  const validToMs = f.instant(validation.validTo, 'validation.validTo');
  if (validFromMs !== null && validToMs !== null && validToMs <= validFromMs) f.fail('validation.validTo', 'must be after validation.validFrom');

  const label = f.object(root.label, 'label', true)!;
  f.noUnknown(label, 'label', ['horizonDays']);
  const sequence = f.object(root.sequence, 'sequence') ?? {};
  f.noUnknown(sequence, 'sequence', ['lookbackDays', 'maxLength']);
  const features = f.object(root.features, 'features') ?? {};
  f.noUnknown(features, 'features', ['windowsDays']);
  const training = f.object(root.training, 'training') ?? {};
  f.noUnknown(training, 'training', ['snapshots']);
  const lookbackDays = f.integer(sequence.lookbackDays, 'sequence.lookbackDays', { min: 1, max: 3660 }) ?? 30;
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
    'replicas', 'validationShare', 'classWeight', 'seed', 'freezeWide', 'itemEmbedding',
  ]);
  const architectures = (f.array(model.architectures, 'model.architectures') ?? [...ARCHITECTURES]).map(
    (a, i) => f.oneOf(a, `model.architectures[${i}]`, [...ARCHITECTURES]) as Architecture,
  );
  if (architectures.length === 0) f.fail('model.architectures', `must name at least one of ${ARCHITECTURES.map((a) => `'${a}'`).join(', ')}`);
  let classWeight: number | 'balanced' = 'balanced';
  if (model.classWeight !== undefined && model.classWeight !== 'balanced') {
    classWeight = f.number(model.classWeight, 'model.classWeight', { min: 0.001, max: 10_000, hint: "a positive number or 'balanced'" })!;
  }

  const tuning = f.object(root.tuning, 'tuning') ?? {};
  f.noUnknown(tuning, 'tuning', ['trials']);
  const ensemble = f.object(root.ensemble, 'ensemble') ?? {};
  f.noUnknown(ensemble, 'ensemble', ['method']);

  const actions = compileActions(f, root.actions);
  const champion = compileChampion(f, root.champion);
  const calibrationRaw = f.object(root.calibration, 'calibration') ?? {};
  f.noUnknown(calibrationRaw, 'calibration', ['method']);
  const calibration = { method: (f.oneOf(calibrationRaw.method, 'calibration.method', ['platt', 'none']) ?? DEFAULT_CALIBRATION.method) as 'platt' | 'none' };

  const output = f.object(root.output, 'output') ?? {};
  f.noUnknown(output, 'output', ['dir', 'mode', 'publishedMode', 'csvFormulaGuard', 'retain']);
  const mode = fileMode(f, output.mode, 'output.mode') ?? PRIVATE_MODES;
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
    input: { path: inputAbsolute, format, timeFormat, timeZone },
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
      maxStalenessMs: maxStalenessMs!,
      minLastDayShare: f.number(validation.minLastDayShare, 'validation.minLastDayShare', { min: 0, max: 1 }) ?? 0.2,
    },
    label: { horizonDays: f.integer(label.horizonDays, 'label.horizonDays', { required: true, min: 1, max: 366, hint: 'a whole number of days ≥ 1' })! },
    sequence: {
      lookbackDays,
      maxLength: f.integer(sequence.maxLength, 'sequence.maxLength', { min: 1, max: 10_000 }) ?? 50,
    },
    features: { windowsDays: compileWindows(f, features.windowsDays, lookbackDays) },
    training: { snapshots: f.integer(training.snapshots, 'training.snapshots', { min: 1, max: 52 }) ?? 1 },
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
      learningRate: f.number(model.learningRate, 'model.learningRate', { min: 1e-7, max: 10 }) ?? 0.01,
      batchSize: f.integer(model.batchSize, 'model.batchSize', { min: 1, max: 1_000_000 }) ?? 128,
      epochs: f.integer(model.epochs, 'model.epochs', { min: 1, max: 10_000 }) ?? 16,
      patience: f.integer(model.patience, 'model.patience', { min: 1, max: 10_000 }) ?? 6,
      replicas: f.integer(model.replicas, 'model.replicas', { min: 1, max: 4096 }) ?? DEFAULT_REPLICAS,
      validationShare: f.number(model.validationShare, 'model.validationShare', { min: 0.01, max: 0.9 }) ?? 0.2,
      classWeight,
      seed: f.integer(model.seed, 'model.seed', { min: 0, max: 2 ** 31 - 1 }) ?? 7,
      freezeWide: f.boolean(model.freezeWide, 'model.freezeWide') ?? true,
      itemEmbedding: f.boolean(model.itemEmbedding, 'model.itemEmbedding') ?? false,
    },
    tuning: { trials: f.integer(tuning.trials, 'tuning.trials', { min: 0, max: 10_000 }) ?? 0 },
    ensemble: { method: (f.oneOf(ensemble.method, 'ensemble.method', ['mean', 'fitted']) ?? 'mean') as 'mean' | 'fitted' },
    actions,
    champion,
    calibration,
    output: {
      dir: path.resolve(dir, f.localPath(output.dir, 'output.dir') ?? 'out'),
      mode,
      publishedMode: fileMode(f, output.publishedMode, 'output.publishedMode') ?? mode,
      csvFormulaGuard: f.boolean(output.csvFormulaGuard, 'output.csvFormulaGuard') ?? true,
      retain: compileRetain(f, output.retain),
    },
    resources: {
      memoryLimit: f.string(resources.memoryLimit, 'resources.memoryLimit', { pattern: MEMORY_PATTERN, hint: "a size like '2GB' or '512MiB'" }) ?? '2GB',
      threads: f.integer(resources.threads, 'resources.threads', { min: 1, max: 1024 }) ?? null,
    },
    security,
  };
}

/**
 * Actions by threshold (`minScore`, sorted highest first) or by share (`topShare`, kept in list order),
 * never both in one entry nor both kinds in one list, and shares summing to at most 1.
 */
function compileActions(f: Fields, raw: unknown): ActionRule[] {
  if (raw === undefined) return DEFAULT_ACTIONS;
  const actions = (f.array(raw, 'actions') ?? []).map((a, i): ActionRule => {
    const o = f.object(a, `actions[${i}]`, true)!;
    f.noUnknown(o, `actions[${i}]`, ['name', 'minScore', 'topShare']);
    const name = f.string(o.name, `actions[${i}].name`, { required: true, pattern: /^[a-z][a-z0-9_]{0,31}$/, hint: 'lowercase letters, digits and "_"' })!;
    if (o.minScore !== undefined && o.topShare !== undefined) {
      f.fail(`actions[${i}]`, `gives both minScore and topShare: an action selects customers by a score threshold or by a share of customers, not both; keep one`);
    }
    if (o.topShare !== undefined) {
      return { name, topShare: f.number(o.topShare, `actions[${i}].topShare`, { min: 0, max: 1, hint: 'a share of customers in (0, 1], e.g. 0.05 for the top 5 %' })! };
    }
    if (o.minScore === undefined) f.fail(`actions[${i}]`, 'needs minScore (a probability threshold in [0, 1]) or topShare (a share of customers in (0, 1])');
    return { name, minScore: f.number(o.minScore, `actions[${i}].minScore`, { required: true, min: 0, max: 1 })! };
  });
  if (actions.some((a) => a.name === 'none')) f.fail('actions', 'may not name an action "none": it is what customers below every threshold get');
  if (new Set(actions.map((a) => a.name)).size !== actions.length) f.fail('actions', 'names an action twice');
  const shares = actions.filter((a) => a.topShare !== undefined);
  if (shares.length > 0 && shares.length < actions.length) {
    const byScore = actions.find((a) => a.minScore !== undefined)!;
    f.fail('actions', `mixes topShare and minScore (e.g. "${shares[0]!.name}" and "${byScore.name}"): give every action a topShare, or every action a minScore`);
  }
  shares.forEach((a, i) => {
    if (!(a.topShare! > 0)) f.fail(`actions[${i}].topShare`, `must be > 0 (a share of customers), got ${a.topShare}`);
  });
  const total = shares.reduce((sum, a) => sum + a.topShare!, 0);
  // A little slack for decimal shares such as 0.1 + 0.2 + 0.7.
  if (total > 1 + 1e-9) f.fail('actions', `topShare values sum to ${Number(total.toFixed(6))}, more than 1 (all of a product's customers): lower them`);
  return shares.length > 0 ? actions : [...actions].sort((a, b) => b.minScore! - a.minScore!);
}

function compileChampion(f: Fields, raw: unknown): NonNullable<Job['champion']> {
  const c = f.object(raw, 'champion') ?? {};
  f.noUnknown(c, 'champion', ['select', 'compareWithPrevious', 'minValidationPositives', 'resamples']);
  return {
    select: f.boolean(c.select, 'champion.select') ?? DEFAULT_CHAMPION.select,
    compareWithPrevious: f.boolean(c.compareWithPrevious, 'champion.compareWithPrevious') ?? DEFAULT_CHAMPION.compareWithPrevious,
    minValidationPositives: f.integer(c.minValidationPositives, 'champion.minValidationPositives', { min: 1, max: 1_000_000 }) ?? DEFAULT_CHAMPION.minValidationPositives,
    resamples: f.integer(c.resamples, 'champion.resamples', { min: 50, max: 100_000 }) ?? DEFAULT_CHAMPION.resamples,
  };
}

function compileRetain(f: Fields, raw: unknown): RetainSettings {
  const r = f.object(raw, 'output.retain') ?? {};
  f.noUnknown(r, 'output.retain', ['runsDays', 'exportsDays']);
  const days = (field: 'runsDays' | 'exportsDays') =>
    f.integer(r[field], `output.retain.${field}`, { min: 1, max: 36_600, hint: 'a whole number of days ≥ 1 (or null to keep all)' }) ?? DEFAULT_RETAIN[field];
  return { runsDays: days('runsDays'), exportsDays: days('exportsDays') };
}

/** A quoted octal file mode ('0640'): the owner reads and writes, nobody else writes, no execute bits. */
function fileMode(f: Fields, v: unknown, field: string): FileModes | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || !/^0?[0-7]{3}$/.test(v)) f.fail(field, `must be an octal file mode in quotes, like '0600' or '0640', got ${describe(v)}`);
  const m = Number.parseInt(v, 8);
  if ((m & 0o600) !== 0o600) f.fail(field, `must let the owner read and write (${formatMode(m | 0o600)}), got '${v}'`);
  if (m & 0o111) f.fail(field, `is a file mode and must have no execute bits (folders get them where r is set), got '${v}'`);
  if (m & 0o002) f.fail(field, `must not let everyone write, got '${v}'`);
  return modesOf(m);
}

/** No control characters (NUL, newlines, escapes): they have no place in a file name and confuse logs and SQL. */
const SAFE_PATH = /^[^\x00-\x1f\x7f]{1,4096}$/;

/** features.windowsDays: whole days in [1, lookbackDays], ascending, without repeats; default from the lookback. */
function compileWindows(f: Fields, raw: unknown, lookbackDays: number): number[] {
  const list = f.array(raw, 'features.windowsDays');
  if (list === undefined) return defaultWindowsDays(lookbackDays);
  if (list.length === 0) f.fail('features.windowsDays', 'must list at least one window in days, e.g. [1, 7, 28]');
  const days = list.map((w, i) => f.integer(w, `features.windowsDays[${i}]`, { required: true, min: 1, max: lookbackDays, hint: `a whole number of days from 1 to sequence.lookbackDays (${lookbackDays})` })!);
  return [...new Set(days)].sort((a, b) => a - b);
}

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

  /** A local file or folder path; a URL (`s3://…`) is refused by name, since nextbuy would read it as a folder called `s3:`. */
  localPath(v: unknown, field: string, required = false): string | undefined {
    const p = this.string(v, field, { required, pattern: SAFE_PATH, hint: 'a path without control characters' });
    const scheme = p === undefined ? null : URL_SCHEME.exec(p);
    if (scheme) {
      this.fail(field, `is a ${scheme[1]}:// URL, and nextbuy reads and writes local paths only: copy the data to a local disk (or mount the bucket) and give that path, got "${p}"`);
    }
    return p;
  }

  /** An IANA time zone name (Europe/London, America/New_York, UTC). */
  timeZone(v: unknown, field: string): string | undefined {
    const tz = this.string(v, field);
    if (tz === undefined) return undefined;
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
    } catch {
      this.fail(field, `must be an IANA time zone name like 'UTC', 'Europe/London' or 'America/New_York', got "${tz}"`);
    }
    return tz;
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
