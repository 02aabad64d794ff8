/**
 * The job file's one definition (zod): the TypeScript type of what a user writes (`JobFile`), the checks
 * `loadJob()` runs on it, and the JSON Schema editors read (`schema/job.schema.json`, `npm run schema`).
 *
 * Each field carries its description, its default and its error messages; a message is the "problem" half of
 * a JobFileError (`<file>: <field> <problem>`), so it reads after the dotted field name. Checks that need more
 * than the file (the input's folder, DuckDB's parser) run in ./job-file.ts after this schema.
 *
 * Adding a section: write `name: section({ ... }, 'what it is')` in `jobFileSchema` with fields built from the
 * helpers below, and read it in compileJob().
 */
import { z } from 'zod';
import { DURATION_PATTERN, parseDuration } from '../core/duration.js';
import { formatMode } from '../core/file-modes.js';
import { MEMORY_SIZE_PATTERN } from '../coordinator/duckdb/index.js';
import { ARCHITECTURES, DEFAULT_REPLICAS, DEFAULT_SEQUENCE_FIRST_EPOCHS } from './job.js';

const ACCOUNT_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const DATE_PATTERN = /^\d{4}-\d{2}-\d{2}$/;
const INSTANT_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;
/** A column name or a derived-column expression (checked by ./column-expression.ts in loadJob). */
const MAPPING_PATTERN = /^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]{1,2000}$/;
/** No control characters (NUL, newlines, escapes): they have no place in a file name and confuse logs and SQL. */
const SAFE_PATH = /^[^\x00-\x1f\x7f]{1,4096}$/;
/** A URL scheme (`s3://`, `gs://`, `http://`): nextbuy reads and writes local paths only. */
const URL_SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
const CATEGORY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const ACTION_NAME_PATTERN = /^[a-z][a-z0-9_]{0,31}$/;
const ADDRESS_PATTERN = /^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/;

/** How a value is named in a message: `"two"`, `a list`, `number 3`, `nothing`. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (typeof v === 'string') return `"${v.length > 60 ? `${v.slice(0, 60)}…` : v}"`;
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${String(v)}`;
}

/** The message of a wrong type: "is required" when absent, else "must be <what>, got <value>". */
const typeError = (what: string) => (iss: { input?: unknown }) => (iss.input === undefined ? 'is required' : `must be ${what}, got ${describeValue(iss.input)}`);

/** Adds a check whose message is the problem `problem(value)` returns (none: the value passes). */
function checked<T extends z.ZodType>(schema: T, problem: (v: z.output<T>) => string | undefined): T {
  return schema.superRefine((v, ctx) => {
    const p = problem(v);
    if (p !== undefined) ctx.addIssue({ code: 'custom', message: p, input: v });
  }) as unknown as T;
}

interface TextOptions { pattern?: RegExp; hint?: string }
/** A non-empty string, optionally matching `pattern` (described as `hint` in messages). */
function text(o: TextOptions = {}) {
  const s = z.string({ error: typeError('a non-empty string') }).min(1, { error: (iss) => `must be a non-empty string, got ${describeValue(iss.input)}` });
  return o.pattern ? s.regex(o.pattern, { error: (iss) => `must be ${o.hint ?? `like ${o.pattern}`}, got "${String(iss.input)}"` }) : s;
}

interface NumberOptions { min?: number; max?: number; hint?: string }
function number(o: NumberOptions = {}) {
  let n = z.number({ error: typeError(o.hint ?? 'a number') });
  if (o.min !== undefined) n = n.min(o.min, { error: (iss) => `must be ≥ ${o.min}, got ${String(iss.input)}` });
  if (o.max !== undefined) n = n.max(o.max, { error: (iss) => `must be ≤ ${o.max}, got ${String(iss.input)}` });
  return n;
}
function whole(o: NumberOptions = {}) {
  const hint = o.hint ?? 'a whole number';
  return number({ ...o, hint }).int({ error: (iss) => `must be ${hint}, got ${String(iss.input)}` });
}
const bool = () => z.boolean({ error: typeError('true or false') });
function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: typeError(`one of ${values.map((v) => `'${v}'`).join(', ')}`) });
}
function list<T extends z.ZodType>(item: T) {
  return z.array(item, { error: typeError('a list') });
}
/** A mapping that refuses keys it does not know (they are reported with a "did you mean"). */
function mapping<S extends z.ZodRawShape>(shape: S) {
  return z.strictObject(shape, { error: (iss) => (iss.code === 'invalid_type' ? typeError('a mapping')(iss) : undefined) });
}
/** An optional section: absent, it is `{}` with every field's default. */
function section<S extends z.ZodRawShape>(shape: S, description: string) {
  // Every field of a section is optional, which the generic shape cannot show the compiler.
  return mapping(shape).prefault({} as z.input<ReturnType<typeof mapping<S>>>).describe(description);
}

/** A local file or folder path; a URL (`s3://…`) is refused by name, since nextbuy would read it as a folder called `s3:`. */
const localPath = () =>
  checked(text({ pattern: SAFE_PATH, hint: 'a path without control characters' }), (p) => {
    const scheme = URL_SCHEME.exec(p);
    return scheme
      ? `is a ${scheme[1]}:// URL, and nextbuy reads and writes local paths only: copy the data to a local disk (or mount the bucket) and give that path, got "${p}"`
      : undefined;
  });

const mappingColumn = () => text({ pattern: MAPPING_PATTERN, hint: 'a column name of the input or an expression (at most 2000 characters, no control characters)' });

/** '30s', '2d', '36h', '250ms', or a number of milliseconds. */
const duration = (problem: (v: unknown) => string, minMs = 0) =>
  checked(z.union([z.string(), z.number()], { error: (iss) => problem(iss.input) }), (v) => {
    const ms = parseDuration(v);
    return ms === undefined || ms < minMs ? problem(v) : undefined;
  }).meta({ pattern: DURATION_PATTERN.source }); // for editors: JSON Schema applies a pattern to strings only

/** A date (00:00 UTC) or an ISO 8601 instant with its offset, e.g. 2017-11-25T00:00:00+08:00. */
const instant = () =>
  checked(z.string({ error: typeError('a date YYYY-MM-DD') }), (v) => {
    if (v.includes('T')) {
      const ms = INSTANT_PATTERN.test(v) ? Date.parse(v) : Number.NaN;
      return Number.isNaN(ms) ? `must be a date YYYY-MM-DD or an instant like 2017-11-25T00:00:00+08:00, got "${v}"` : undefined;
    }
    if (!DATE_PATTERN.test(v)) return `must be a date YYYY-MM-DD, got "${v}"`;
    return parseDateMs(v) === null ? `is not a real calendar date: "${v}"` : undefined;
  }).meta({ pattern: `${DATE_PATTERN.source}|${INSTANT_PATTERN.source}` });

/** A quoted octal file mode ('0640'): the owner reads and writes, nobody else writes, no execute bits. */
const fileMode = () =>
  checked(z.string({ error: typeError("an octal file mode in quotes, like '0600' or '0640'") }), (v) => {
    if (!/^0?[0-7]{3}$/.test(v)) return `must be an octal file mode in quotes, like '0600' or '0640', got "${v}"`;
    const m = Number.parseInt(v, 8);
    if ((m & 0o600) !== 0o600) return `must let the owner read and write (${formatMode(m | 0o600)}), got '${v}'`;
    if (m & 0o111) return `is a file mode and must have no execute bits (folders get them where r is set), got '${v}'`;
    if (m & 0o002) return `must not let everyone write, got '${v}'`;
    return undefined;
  });

const timeZone = () =>
  checked(text(), (tz) => {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      return undefined;
    } catch {
      return `must be an IANA time zone name like 'UTC', 'Europe/London' or 'America/New_York', got "${tz}"`;
    }
  });

const action = mapping({
  name: text({ pattern: ACTION_NAME_PATTERN, hint: 'lowercase letters, digits and "_"' }).describe('The action customers get, e.g. in_store, sms (not "none": that is what customers below every threshold get).'),
  minScore: number({ min: 0, max: 1 }).optional().describe('Customers whose (calibrated) score reaches this probability get the action; the highest threshold reached wins.'),
  topShare: number({ min: 0, max: 1, hint: 'a share of customers in (0, 1], e.g. 0.05 for the top 5 %' })
    .optional()
    .describe("This share of each product's customers, taken by rank after the previous actions' shares (ties by customer id)."),
}).superRefine((a, ctx) => {
  if (a.minScore !== undefined && a.topShare !== undefined) {
    ctx.addIssue({ code: 'custom', message: 'gives both minScore and topShare: an action selects customers by a score threshold or by a share of customers, not both; keep one' });
  } else if (a.minScore === undefined && a.topShare === undefined) {
    ctx.addIssue({ code: 'custom', message: 'needs minScore (a probability threshold in [0, 1]) or topShare (a share of customers in (0, 1])' });
  } else if (a.topShare !== undefined && !(a.topShare > 0)) {
    ctx.addIssue({ code: 'custom', path: ['topShare'], message: `must be > 0 (a share of customers), got ${a.topShare}` });
  }
});

export const DEFAULT_ACTIONS = [
  { name: 'in_store', minScore: 0.4 },
  { name: 'sms', minScore: 0.2 },
];

const retainDays = (what: string) =>
  whole({ min: 1, max: 36_600, hint: 'a whole number of days ≥ 1 (or null to keep all)' }).nullable().default(null).describe(`${what} older than this many days go (null keeps all).`);

export const jobFileSchema = mapping({
  account: text({ pattern: ACCOUNT_PATTERN, hint: 'lowercase letters, digits, "-" and "_", starting with a letter or digit' }).describe(
    "Account name: lowercase letters, digits, '-' and '_' (it becomes a path component).",
  ),
  input: mapping({
    path: localPath().describe(
      'A local file, folder or glob, relative to the job file. Hive folders `date=YYYY-MM-DD/` are pruned to the window. URLs (`s3://`, `gs://`, `http://`) are refused: copy or mount the data locally.',
    ),
    format: oneOf(['csv', 'parquet']).optional().describe("Default: from the file extension ('.csv', '.csv.gz' → csv; '.parquet' → parquet)."),
    timeFormat: oneOf(['auto', 'epoch_seconds', 'epoch_millis', 'iso'])
      .default('auto')
      .describe("How the time column is written. 'auto': integers < 1e11 are epoch seconds, larger are millis; strings are ISO 8601."),
    timeZone: timeZone()
      .default('UTC')
      .describe(
        "IANA time zone (e.g. 'Europe/London') of timestamps written without one (`2010-12-01 08:26:00`, Parquet TIMESTAMP, DATE). Timestamps with an offset or 'Z', epoch numbers and TIMESTAMP WITH TIME ZONE are absolute and unaffected. Days (D, windows, validFrom) stay UTC days.",
      ),
  }).describe('Where the raw events are.'),
  columns: mapping({
    customer: mappingColumn().describe('The customer id.'),
    time: mappingColumn().describe('When the event happened (see input.timeFormat and input.timeZone).'),
    eventType: mappingColumn().describe('The event type: one of events.types.'),
    item: mappingColumn().optional().describe('Default: none (no item embedding).'),
    category: mappingColumn().optional().describe('Default: none (no category embedding; per-category products need it).'),
    numeric: list(
      mapping({
        column: text({ pattern: MAPPING_PATTERN, hint: 'a column name of the input or an expression' }),
        min: number().optional().describe('Rows below this are rejected.'),
      }),
    )
      .default([])
      .describe('Numeric per-event features, e.g. `[{ column: price, min: 0 }]`; rows below `min` are rejected.'),
  }).describe(
    'Which input column holds each field, or a DuckDB scalar expression over the input\'s columns that derives it: `eventType: "CASE WHEN Quantity < 0 THEN \'return\' ELSE \'purchase\' END"`, `category: "left(StockCode, 3)"`, `eventType: "\'purchase\'"` (a constant). Expressions may use column names, literals, operators, CASE, casts and the scalar functions listed in jobs/column-expression.ts; subqueries, table functions, comments and other functions are refused when the job file loads.',
  ),
  events: mapping({
    types: list(text()).describe('The event types the account emits; other values are rejected as unknown.'),
    purchase: text().describe('The event type that counts as a purchase (the label).'),
  })
    .describe('The event types in the input.')
    .superRefine((e, ctx) => {
    if (e.types.length === 0) ctx.addIssue({ code: 'custom', path: ['types'], message: 'must list at least one event type' });
    else if (new Set(e.types).size !== e.types.length) ctx.addIssue({ code: 'custom', path: ['types'], message: 'lists an event type twice' });
    else if (!e.types.includes(e.purchase)) ctx.addIssue({ code: 'custom', path: ['purchase'], message: `must be one of events.types (${e.types.join(', ')}), got "${e.purchase}"` });
  }),
  validation: section(
    {
      validFrom: instant().optional().describe('Events before this date (00:00 UTC) or instant (ISO 8601 with offset) are rejected as out of range. Default: none.'),
      validTo: instant().optional().describe('Events at or after this date or instant are rejected as out of range. Default: none.'),
      maxRejectedShare: number({ min: 0, max: 1 })
        .default(0.01)
        .describe('The run fails if more than this share of rows is rejected (every reason counted in the summary: malformed CSV lines, rule breaks and duplicates).'),
      maxStaleness: duration((v) => `must be a duration like '2d' or '36h', got ${describeValue(v)}`)
        .default('2d')
        .describe("Freshness: the run refuses to build (exit 4) when the input's latest valid event is older than this before D (00:00 UTC), e.g. a feed that stopped. `--allow-stale` overrides."),
      minLastDayShare: number({ min: 0, max: 1 })
        .default(0.2)
        .describe(
          'Freshness: the run refuses to build (exit 4) when the last day before D holds fewer events than this share of the mean of the 7 days before it (a feed that landed only in part). 0 turns the check off; `--allow-stale` overrides.',
        ),
    },
    'Which rows are valid, and how many rejected rows a run tolerates.',
  ).superRefine((v, ctx) => {
    if (v.validFrom !== undefined && v.validTo !== undefined) {
      const from = instantMs(v.validFrom);
      const to = instantMs(v.validTo);
      if (from !== null && to !== null && to <= from) ctx.addIssue({ code: 'custom', path: ['validTo'], message: 'must be after validation.validFrom' });
    }
  }),
  label: mapping({
    horizonDays: whole({ min: 1, max: 366, hint: 'a whole number of days ≥ 1' }).describe('The label is a purchase in [D, D + horizonDays).'),
  }).describe('What the models predict.'),
  sequence: section(
    {
      lookbackDays: whole({ min: 1, max: 3660 }).default(30).describe('Features use events in [D − lookbackDays, D).'),
      maxLength: whole({ min: 1, max: 10_000 }).default(50).describe('The last maxLength events of each customer.'),
    },
    'The event sequence each customer is given to the sequence models.',
  ),
  features: section(
    {
      windowsDays: list(whole({ min: 1, hint: 'a whole number of days from 1 to sequence.lookbackDays' }))
        .optional()
        .describe(
          'Windows, in days before the as-of instant, over which the aggregate features count events and sum the numeric columns (per product category and overall; see coordinator/features). Each ≤ sequence.lookbackDays. Default: [1, 7, 28] where shorter than the lookback, and the whole lookback.',
        ),
    },
    'The aggregate (wide) features.',
  ),
  training: section(
    {
      snapshots: whole({ min: 1, max: 52 })
        .default(1)
        .describe('Point-in-time training snapshots stacked into one training set: as of D − H, D − 2H, … (N dates), each with its own features and labels. Validation customers are split by customer, so no customer is in both.'),
    },
    'How the training set is built.',
  ),
  vocabulary: section(
    {
      minCount: whole({ min: 1 }).default(2).describe('Items and categories seen fewer times in the training window map to 1 (unknown).'),
      maxSize: whole({ min: 1, max: 10_000_000 }).default(50_000).describe('At most this many tokens per vocabulary, most frequent first (plus 0 = pad, 1 = unknown).'),
    },
    'Item and category vocabularies.',
  ),
  products: section(
    {
      overall: bool().default(true).describe('Model "any purchase" as the product named `any`.'),
      topCategories: whole({ min: 0, max: 1000 })
        .default(0)
        .describe('Also model the N categories with the most distinct buyers in the training window: the training set\'s feature and label days [D − H − L, D), ties by category value.'),
      categories: list(
        // A category written as a number (`7`) is its digits.
        z.union([text({ pattern: CATEGORY_PATTERN, hint: 'letters, digits, "_", "-", "."' }), z.number().int().min(0)], {
          error: (iss) => (iss.input === undefined ? 'is required' : `must be letters, digits, "_", "-", ".", got ${describeValue(iss.input)}`),
        }),
      )
        .default([])
        .describe('Also model these categories (values of the category column); one without a purchase in the input is an error.'),
    },
    'Which products get a model.',
  ),
  sampling: section(
    {
      negativeRate: number({ min: 0.0001, max: 1, hint: 'a share in (0, 1]' })
        .default(1)
        .describe('Keep this share of training customers without any purchase in the label window; kept ones get weight 1/rate.'),
    },
    'Sampling of training customers.',
  ),
  shards: section(
    {
      count: whole({ min: 1, max: 100_000 }).default(8).describe('Customers are hashed into this many shards.'),
      batchRows: whole({ min: 1, max: 1_000_000 }).default(4096).describe('Rows per Arrow record batch inside a shard.'),
    },
    'How customers are split for the workers.',
  ),
  cluster: section(
    {
      workers: whole({ min: 1, max: 1024 }).default(2).describe('Local worker processes to start (env local).'),
      addresses: list(text({ pattern: ADDRESS_PATTERN, hint: 'host:port' })).default([]).describe('Connect to these worker addresses (host:port) instead of starting processes.'),
      inFlightPerWorker: whole({ min: 1, max: 64 }).default(2).describe('Shards in flight per worker.'),
      heartbeatTimeout: duration((v) => `must be a duration like '30s' (at least 100ms), got "${String(v)}"`, 100)
        .default('30s')
        .describe('A worker silent this long is presumed dead.'),
      maxAttemptsPerShard: whole({ min: 1, max: 100 }).default(3).describe('A shard that fails on this many different workers fails the run.'),
    },
    'The worker pool.',
  ),
  model: section(
    {
      architectures: list(oneOf(ARCHITECTURES))
        .default([...ARCHITECTURES])
        .describe(
          'Which models to train: `logistic` (one logistic regression per product on the aggregate features), `lstm` (one binary LSTM per product, with the aggregate features beside the sequence) and/or `attention` (one LSTM with attention keyed by product, likewise).',
        ),
      embeddingDim: whole({ min: 1, max: 4096 }).default(16).describe('Width of the token embeddings.'),
      hiddenUnits: whole({ min: 1, max: 4096 }).default(32).describe('Units of the LSTM.'),
      denseUnits: whole({ min: 1, max: 4096 }).default(16).describe('Units of the dense layer before the output.'),
      learningRate: number({ min: 1e-7, max: 10 }).default(0.01).describe('Learning rate of the optimiser.'),
      batchSize: whole({ min: 1, max: 1_000_000 }).default(128).describe('Sequences per training batch.'),
      epochs: whole({ min: 1, max: 10_000 }).default(16).describe('At most this many passes over the training set (see patience).'),
      patience: whole({ min: 1, max: 10_000 }).default(6).describe('Stop after this many epochs without a better validation AUC.'),
      replicas: whole({ min: 1, max: 4096 })
        .default(DEFAULT_REPLICAS)
        .describe('Data-parallel replicas the training shards are split into (capped at shards.count). The trained weights depend on it and never on how many workers join or die; workers beyond it idle while training.'),
      validationShare: number({ min: 0.01, max: 0.9 }).default(0.2).describe('Share of training customers held out for validation (by customer hash).'),
      classWeight: z
        .union([z.literal('balanced'), number({ min: 0.001, max: 10_000 })], { error: typeError("a positive number or 'balanced'") })
        .default('balanced')
        .describe("Positive-class weight: a number, or 'balanced' (negatives/positives)."),
      seed: whole({ min: 0, max: 2 ** 31 - 1 }).default(7).describe('Random seed of the training (and of the tuning trials).'),
      sequenceFirstEpochs: whole({ min: 0, max: 10_000 })
        .default(DEFAULT_SEQUENCE_FIRST_EPOCHS)
        .describe(
          'The lstm and attention models train their sequence part alone for this many epochs (their wide part, the aggregate features, held at zero), then both parts together; early stopping counts from then. Given the aggregate features from the first step, a sequence model settles on what the counts say and its sequence part stops learning. 0: both parts from the first epoch.',
        ),
      itemEmbedding: bool()
        .default(false)
        .describe(
          'The lstm and attention models embed the item of each event (when columns.item maps one); off, they read its category, event type, timing and numeric values. Off by default: with thousands of items and hundreds of buyers per product, item embeddings memorise the training buyers instead of learning patterns that carry to new customers.',
        ),
    },
    'The models and their training.',
  ).superRefine((m, ctx) => {
    if (m.architectures.length === 0) ctx.addIssue({ code: 'custom', path: ['architectures'], message: `must name at least one of ${ARCHITECTURES.map((a) => `'${a}'`).join(', ')}` });
  }),
  tuning: section({ trials: whole({ min: 0, max: 10_000 }).default(0).describe('Random-search trials per architecture (0 = use `model` as given).') }, 'Hyper-parameter search.'),
  ensemble: section({ method: oneOf(['mean', 'fitted']).default('mean').describe("How a product's model scores combine.") }, "How a product's models are combined."),
  actions: list(action)
    .default(DEFAULT_ACTIONS)
    .describe(
      "Actions per product, each by a (calibrated) score threshold or by a share of the product's customers by rank, not both, and all entries of one kind. Thresholds: the highest reached wins (listed in any order). Shares: in list order, the first takes the top `topShare` of customers, the next the following ones, and so on (ties broken by customer id); the shares sum to at most 1. E.g. `[{ name: in_store, topShare: 0.05 }, { name: sms, topShare: 0.15 }]`.",
    )
    .superRefine((actions, ctx) => {
      const problem = actionsProblem(actions);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  champion: section(
    {
      select: bool().default(true).describe('Publish, per product, the candidate (the ensemble or one model) best on the validation customers; false: always the ensemble.'),
      compareWithPrevious: bool().default(true).describe("Keep the last published model instead of this night's when this night's is worse beyond noise on the same validation customers."),
      minValidationPositives: whole({ min: 1, max: 1_000_000 }).default(10).describe("Below this many validation buyers a product publishes the mean of its models (with a warning) and keeps this night's models."),
      resamples: whole({ min: 50, max: 100_000 }).default(400).describe('Bootstrap resamples behind "beyond noise" (a paired, stratified bootstrap of the AUC difference, fixed seed).'),
    },
    'Which candidate each product publishes.',
  ),
  calibration: section(
    {
      method: oneOf(['platt', 'none'])
        .default('platt')
        .describe("'platt': published scores are fitted to the validation customers' purchase rates (a logistic regression on the score's logit); 'none': raw scores."),
    },
    'Calibration of published scores.',
  ),
  output: section(
    {
      dir: localPath().default('out').describe('Where prediction tables, reports and run state go: a local folder, relative to the job file (URLs are refused).'),
      mode: fileMode()
        .default('0600')
        .describe(
          "Permissions of everything a run writes that holds customer data (run folder, shards, quarantine, checkpoints, models, scores, reports, audiences, exports), as a quoted octal file mode; folders get x wherever r is set ('0600' → folders 0700). Set exactly, whatever the umask.",
        ),
      publishedMode: fileMode().optional().describe("The same for the published prediction table (e.g. '0640': the warehouse loader's group reads it, folders 0750). Default: output.mode."),
      csvFormulaGuard: bool()
        .default(true)
        .describe('CSV cells (audiences, the CSV export) that start with =, +, -, @, tab or CR get a leading single quote, and text cells are quoted, so spreadsheets do not run them as formulas. Turn off for machine consumers.'),
      retain: section(
        {
          runsDays: retainDays('Run folders (shards, checkpoints, models, scores, the report)'),
          exportsDays: retainDays('Exports (`exports/account=<a>/date=<d>/`)'),
        },
        "Retention, applied after each successful run that publishes (and by `nextbuy gc` without --older-than): run folders and CSV exports dated more than this many days before the run's date are removed. Never removed: the published tables and audiences, the latest committed date, models still in use, a date whose lock is held.",
      ),
    },
    'Where and how results are written.',
  ),
  resources: section(
    {
      memoryLimit: text({ pattern: MEMORY_SIZE_PATTERN, hint: "a size like '2GB' or '512MiB'" }).default('2GB').describe('DuckDB memory_limit; the sequence pass\'s threads share half of it.'),
      threads: whole({ min: 1, max: 1024 }).optional().describe('DuckDB threads, and the threads that build shards in parallel (at most one per shard). Default: all cores.'),
    },
    "DuckDB's resources.",
  ),
  observability: section(
    {
      pushgateway: mapping({
        url: checked(text(), (url) =>
          URL.canParse(url) && /^https?:$/.test(new URL(url).protocol) ? undefined : `must be an http:// or https:// URL like 'http://pushgateway:9091', got "${url}"`,
        ).describe("Its base URL, e.g. 'http://prometheus-pushgateway.monitoring.svc:9091' (http or https)."),
        job: text({ pattern: /^[A-Za-z0-9_.-]{1,64}$/, hint: 'letters, digits, "_", "-", "." (at most 64)' }).default('nextbuy').describe("The grouping key's `job` label."),
      })
        .nullable()
        .default(null)
        .describe(
          'A Prometheus Pushgateway that receives the night\'s metrics at the end of every run, successful or failed, under the grouping key { job, account, date } (PUT: a rerun replaces its date\'s group). A push that fails is a warning in the log, never a failed night. Default: null (no push).',
        ),
      textfile: checked(localPath(), (p) => (p.endsWith('.prom') ? undefined : `must end in .prom (node-exporter's textfile collector reads only those), got "${p}"`))
        .nullable()
        .default(null)
        .describe("The same metrics written (atomically) to this file for node-exporter's textfile collector: a path ending in `.prom`, relative to the job file. Default: null (no file)."),
    },
    'Where each night\'s metrics go when the run ends (README "Metrics").',
  ),
  security: section(
    {
      tls: mapping({
        ca: text({ pattern: SAFE_PATH, hint: 'a PEM file path' }),
        cert: text({ pattern: SAFE_PATH, hint: 'a PEM file path' }),
        key: text({ pattern: SAFE_PATH, hint: 'a PEM file path' }),
      })
        .nullable()
        .default(null)
        .describe(
          "Mutual TLS between the coordinator and its workers: PEM paths (relative to the job file) of the deployment's CA and the coordinator's certificate and key. Workers read theirs from NEXTBUY_TLS_* (local workers get these same paths). Default: null (plaintext: fine on loopback, warned about elsewhere).",
        ),
      allowPlaintext: bool().default(false).describe('Accept plaintext to non-loopback addresses without a warning.'),
      inputRoots: list(text({ pattern: SAFE_PATH, hint: 'a folder path' }))
        .optional()
        .describe("Folders (relative to the job file) input files may live in, symlinks followed. Default: the job file's folder.")
        .superRefine((roots, ctx) => {
          if (roots !== undefined && roots.length === 0) ctx.addIssue({ code: 'custom', message: "must list at least one folder (leave it out to mean the job file's folder)" });
        }),
    },
    'Transport security and where input may be read from.',
  ),
})
  .superRefine((job, ctx) => {
    const p = job.products;
    if ((p.categories.length > 0 || p.topCategories > 0) && job.columns.category === undefined) {
      ctx.addIssue({ code: 'custom', path: ['products'], message: 'models categories but columns.category is not set: map the category column or set products.topCategories: 0 and products.categories: []' });
    } else if (!p.overall && p.categories.length === 0 && p.topCategories === 0) {
      ctx.addIssue({ code: 'custom', path: ['products'], message: 'models nothing: set overall: true, topCategories or categories' });
    }
    const lookback = job.sequence.lookbackDays;
    job.features.windowsDays?.forEach((w, i) => {
      if (w > lookback) ctx.addIssue({ code: 'custom', path: ['features', 'windowsDays', i], message: `must be a whole number of days from 1 to sequence.lookbackDays (${lookback}), got ${w}` });
    });
    if (job.features.windowsDays?.length === 0) ctx.addIssue({ code: 'custom', path: ['features', 'windowsDays'], message: 'must list at least one window in days, e.g. [1, 7, 28]' });
  })
  .describe('A nextbuy job file: one account\'s events, how to read them, the models to train and what to publish. Paths are relative to the job file.');

/** A job file as written in YAML: every field not required has the default its description gives. */
export type JobFile = z.input<typeof jobFileSchema>;
/** A job file with its static defaults filled in (the checked form compileJob() reads). */
export type CheckedJobFile = z.output<typeof jobFileSchema>;

/** Actions by threshold or by share, never both kinds in one list, no "none", no repeats, shares summing to at most 1. */
function actionsProblem(actions: { name: string; minScore?: number; topShare?: number }[]): string | undefined {
  if (actions.some((a) => a.name === 'none')) return 'may not name an action "none": it is what customers below every threshold get';
  if (new Set(actions.map((a) => a.name)).size !== actions.length) return 'names an action twice';
  const shares = actions.filter((a) => a.topShare !== undefined);
  if (shares.length > 0 && shares.length < actions.length) {
    const byScore = actions.find((a) => a.minScore !== undefined)!;
    return `mixes topShare and minScore (e.g. "${shares[0]!.name}" and "${byScore.name}"): give every action a topShare, or every action a minScore`;
  }
  const total = shares.reduce((sum, a) => sum + a.topShare!, 0);
  // A little slack for decimal shares such as 0.1 + 0.2 + 0.7.
  if (total > 1 + 1e-9) return `topShare values sum to ${Number(total.toFixed(6))}, more than 1 (all of a product's customers): lower them`;
  return undefined;
}

/** 'YYYY-MM-DD' → epoch ms at 00:00 UTC, or null when it is not a real date. */
export function parseDateMs(s: string): number | null {
  if (!DATE_PATTERN.test(s)) return null;
  const ms = Date.parse(`${s}T00:00:00Z`);
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== s) return null;
  return ms;
}

/** A checked date or instant (see `instant()`) → epoch ms; null when it is neither. */
export function instantMs(v: string): number | null {
  if (v.includes('T')) {
    const ms = INSTANT_PATTERN.test(v) ? Date.parse(v) : Number.NaN;
    return Number.isNaN(ms) ? null : ms;
  }
  return parseDateMs(v);
}

/** Where the generated JSON Schema is committed, relative to the package root. */
export const JOB_SCHEMA_PATH = 'schema/job.schema.json';

/**
 * The job file's JSON Schema, as `npm run schema` writes it to schema/job.schema.json (draft-07, which editors'
 * YAML support reads). Checks that need code (durations, dates, cross-field rules) are in the descriptions only.
 */
export function jobFileJsonSchemaText(): string {
  const schema = z.toJSONSchema(jobFileSchema, { io: 'input', target: 'draft-7' }) as Record<string, unknown>;
  return `${JSON.stringify({ $schema: schema.$schema, title: 'nextbuy job file', ...schema }, null, 2)}\n`;
}
