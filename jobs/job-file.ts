/**
 * Loads a job file (YAML) and compiles it into a Job: every field checked at load against the one schema
 * (./job-schema.ts) with an error that names the file and the field, every default filled in, paths made
 * absolute, dates made epoch ms.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parse, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { JobFileError } from '../core/errors.js';
import { parseDuration } from '../core/duration.js';
import { modesOf } from '../core/file-modes.js';
import { defaultWindowsDays } from '../coordinator/features/index.js';
import { checkMappings } from './column-expression.js';
import { instantMs, jobFileSchema, parseDateMs, type CheckedJobFile } from './job-schema.js';
import type { ActionRule, Job } from './job.js';
import { closest } from './suggest.js';

export { parseDateMs } from './job-schema.js';
export { DEFAULT_ACTIONS } from './job-schema.js';

/**
 * Largest job file read. Real ones are a few KiB; the YAML parser is quadratic on some malformed input
 * (found by test/fuzz-job-file.test.ts: 37 KB of commas in a flow mapping took 3 s, 85 KB took 18 s).
 */
export const MAX_JOB_FILE_BYTES = 32 * 1024;

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

/** Checks a parsed job file against the schema; the first problem becomes a JobFileError naming its field. */
export function checkJobFile(raw: unknown, file: string): CheckedJobFile {
  const result = jobFileSchema.safeParse(normalise(raw, 0));
  if (!result.success) {
    // A misspelt key first: it is often why a required field is "missing".
    const issues = result.error.issues;
    throw toJobFileError(file, issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0]!);
  }
  return result.data;
}

/** Compiles an already parsed job file; `file` is used in errors and to resolve relative paths. */
export function compileJob(raw: unknown, file: string): Job {
  const j = checkJobFile(raw, file);
  const fail = (field: string, problem: string): never => {
    throw new JobFileError(file, field, problem);
  };
  const dir = path.dirname(file);
  const inputAbsolute = path.resolve(dir, j.input.path);
  const security = compileSecurity(j.security, dir, j.input.path);
  if (!security.inputRoots.some((r) => isInside(r, inputAbsolute))) {
    fail('input.path', `"${j.input.path}" is outside the folders this job may read (${security.inputRoots.join(', ')}): move the input there or list its folder in security.inputRoots`);
  }
  const format = j.input.format ?? inferFormat(j.input.path) ?? fail('input.format', `cannot be inferred from "${j.input.path}": set input.format to csv or parquet`);
  const mode = modesOf(Number.parseInt(j.output.mode, 8));
  const actions: ActionRule[] = j.actions.map((a) => (a.topShare !== undefined ? { name: a.name, topShare: a.topShare } : { name: a.name, minScore: a.minScore! }));
  const byShare = actions.some((a) => a.topShare !== undefined);

  return {
    account: j.account,
    file,
    input: { path: inputAbsolute, format, timeFormat: j.input.timeFormat, timeZone: j.input.timeZone },
    columns: {
      customer: j.columns.customer,
      time: j.columns.time,
      eventType: j.columns.eventType,
      item: j.columns.item ?? null,
      category: j.columns.category ?? null,
      numeric: j.columns.numeric.map((n) => ({ column: n.column, min: n.min ?? null })),
    },
    events: { types: j.events.types, purchase: j.events.purchase },
    validation: {
      validFromMs: j.validation.validFrom === undefined ? null : instantMs(j.validation.validFrom),
      validToMs: j.validation.validTo === undefined ? null : instantMs(j.validation.validTo),
      maxRejectedShare: j.validation.maxRejectedShare,
      maxStalenessMs: parseDuration(j.validation.maxStaleness)!,
      minLastDayShare: j.validation.minLastDayShare,
    },
    label: { horizonDays: j.label.horizonDays },
    sequence: { lookbackDays: j.sequence.lookbackDays, maxLength: j.sequence.maxLength },
    features: { windowsDays: j.features.windowsDays ? [...new Set(j.features.windowsDays)].sort((a, b) => a - b) : defaultWindowsDays(j.sequence.lookbackDays) },
    training: { snapshots: j.training.snapshots },
    vocabulary: { minCount: j.vocabulary.minCount, maxSize: j.vocabulary.maxSize },
    products: { overall: j.products.overall, topCategories: j.products.topCategories, categories: [...new Set(j.products.categories.map(String))] },
    sampling: { negativeRate: j.sampling.negativeRate },
    shards: { count: j.shards.count, batchRows: j.shards.batchRows },
    cluster: {
      workers: j.cluster.workers,
      addresses: j.cluster.addresses,
      inFlightPerWorker: j.cluster.inFlightPerWorker,
      heartbeatTimeoutMs: parseDuration(j.cluster.heartbeatTimeout)!,
      maxAttemptsPerShard: j.cluster.maxAttemptsPerShard,
    },
    model: { ...j.model, architectures: [...new Set(j.model.architectures)] },
    tuning: { trials: j.tuning.trials },
    ensemble: { method: j.ensemble.method },
    actions: byShare ? actions : [...actions].sort((a, b) => b.minScore! - a.minScore!),
    champion: { ...j.champion },
    calibration: { method: j.calibration.method },
    output: {
      dir: path.resolve(dir, j.output.dir),
      mode,
      publishedMode: j.output.publishedMode === undefined ? mode : modesOf(Number.parseInt(j.output.publishedMode, 8)),
      csvFormulaGuard: j.output.csvFormulaGuard,
      retain: { runsDays: j.output.retain.runsDays, exportsDays: j.output.retain.exportsDays },
    },
    resources: { memoryLimit: j.resources.memoryLimit, threads: j.resources.threads ?? null },
    observability: {
      pushgateway: j.observability.pushgateway ? { url: j.observability.pushgateway.url, job: j.observability.pushgateway.job } : null,
      textfile: j.observability.textfile === null ? null : path.resolve(dir, j.observability.textfile),
    },
    security,
  };
}

function compileSecurity(s: CheckedJobFile['security'], dir: string, inputPath: string): NonNullable<Job['security']> {
  const tls = s.tls ? { ca: path.resolve(dir, s.tls.ca), cert: path.resolve(dir, s.tls.cert), key: path.resolve(dir, s.tls.key) } : null;
  // Without inputRoots: the job folder, and an absolute input.path (an explicit choice) up to its first glob.
  // Either way a relative path cannot climb out, and no symlink under the input may lead elsewhere.
  const defaults = [dir, ...(path.isAbsolute(inputPath) ? [globPrefix(path.resolve(inputPath))] : [])];
  const roots = s.inputRoots ? s.inputRoots.map((r) => path.resolve(dir, r)) : defaults;
  return { tls, allowPlaintext: s.allowPlaintext, inputRoots: roots };
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

function inferFormat(p: string): 'csv' | 'parquet' | undefined {
  const lower = p.toLowerCase();
  if (/\.parquet$/.test(lower)) return 'parquet';
  if (/\.(csv|tsv)(\.gz|\.zst)?$/.test(lower)) return 'csv';
  return undefined;
}

/** Deepest nesting a job file has (columns.numeric[i].min); below it values are left for the schema to refuse. */
const MAX_NORMALISED_DEPTH = 8;

/**
 * What YAML writes that the schema reads as something else: a key with no value (`validation:`) means the
 * default, as if absent; a YAML 1.1 timestamp read as a Date is its day.
 */
function normalise(v: unknown, depth: number): unknown {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? v : v.toISOString().slice(0, 10);
  if (depth > MAX_NORMALISED_DEPTH || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => normalise(x, depth + 1));
  // fromEntries defines keys as own properties, so a `__proto__` key stays a key (and is refused as unknown).
  return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null && x !== undefined).map(([k, x]) => [k, normalise(x, depth + 1)]));
}

/** The schema's first problem as `<file>: <field> <problem>`; an unknown key gets a "did you mean". */
function toJobFileError(file: string, first: z.core.$ZodIssue): JobFileError {
  let issue = first;
  const at: PropertyKey[] = [...issue.path];
  // A value of the right type that one option of a union refuses: report that option's problem.
  while (issue.code === 'invalid_union') {
    const branch = issue.errors.find((b) => b.length > 0 && b.every((i) => i.code !== 'invalid_type' && i.code !== 'invalid_value'));
    if (!branch) break;
    issue = branch[0]!;
    at.push(...issue.path);
  }
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const known = knownKeys(at);
    const guess = closest(key, known);
    return new JobFileError(file, fieldName([...at, key]), `is not a known field${guess ? ` (did you mean "${guess}"?)` : ''}; known here: ${known.join(', ')}`);
  }
  return new JobFileError(file, fieldName(at), issue.message);
}

/** ['columns', 'numeric', 0, 'min'] → 'columns.numeric[0].min'; [] → '(root)'. */
export function fieldName(at: readonly PropertyKey[]): string {
  const name = at.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('');
  return name || '(root)';
}

/** The keys the schema knows in the mapping at `at`. */
function knownKeys(at: readonly PropertyKey[]): string[] {
  let s = unwrap(jobFileSchema);
  for (const key of at) {
    const def = s._zod.def as { type: string; shape?: Record<string, z.core.$ZodType>; element?: z.core.$ZodType };
    const next = def.type === 'object' ? def.shape?.[String(key)] : def.type === 'array' ? def.element : undefined;
    if (!next) return [];
    s = unwrap(next);
  }
  const def = s._zod.def as { type: string; shape?: Record<string, unknown> };
  return def.type === 'object' ? Object.keys(def.shape ?? {}) : [];
}

/** A schema without its optional / default / nullable wrappers. */
function unwrap(s: z.core.$ZodType): z.core.$ZodType {
  for (;;) {
    const def = s._zod.def as { innerType?: z.core.$ZodType };
    if (!def.innerType) return s;
    s = def.innerType;
  }
}

export function formatDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
