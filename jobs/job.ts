import type { FileModes } from '../core/file-modes.js';

/**
 * The job file: what a user writes (JobFile, friendly values with documented defaults) and the
 * one normalised form every stage reads (Job). `loadJob()` in ./job-file.ts compiles one into the other.
 */

import type { ActionRule } from '../coordinator/publish/actions.js';

/** A job file as written in YAML. Every field not marked required has the default shown. */
export interface JobFile {
  /** Required. Account name: lowercase letters, digits, '-' and '_' (it becomes a path component). */
  account: string;
  input: {
    /**
     * Required. A local file, folder or glob, relative to the job file. Hive folders `date=YYYY-MM-DD/` are pruned
     * to the window. URLs (`s3://`, `gs://`, `http://`) are refused: copy or mount the data locally.
     */
    path: string;
    /** @default from the file extension ('.csv', '.csv.gz' → csv; '.parquet' → parquet) */
    format?: 'csv' | 'parquet';
    /** How the time column is written. @default 'auto' (integers < 1e11 are epoch seconds, larger are millis; strings are ISO 8601) */
    timeFormat?: 'auto' | 'epoch_seconds' | 'epoch_millis' | 'iso';
    /**
     * IANA time zone (e.g. 'Europe/London') of timestamps written without one (`2010-12-01 08:26:00`, Parquet
     * TIMESTAMP, DATE). Timestamps with an offset or 'Z', epoch numbers and TIMESTAMP WITH TIME ZONE are
     * absolute and unaffected. Days (D, windows, validFrom) stay UTC days. @default 'UTC'
     */
    timeZone?: string;
  };
  /**
   * Required. Which input column holds each field, or a DuckDB scalar expression over the input's columns that
   * derives it: `eventType: "CASE WHEN Quantity < 0 THEN 'return' ELSE 'purchase' END"`, `category: "left(StockCode, 3)"`,
   * `eventType: "'purchase'"` (a constant). A name the input has is that column. Expressions may use column names,
   * literals, operators, CASE, casts and the scalar functions listed in jobs/column-expression.ts; subqueries, table
   * functions, comments and other functions are refused when the job file loads.
   */
  columns: {
    customer: string;
    time: string;
    eventType: string;
    /** @default none (no item embedding) */
    item?: string;
    /** @default none (no category embedding; per-category products need it) */
    category?: string;
    /** Numeric per-event features, e.g. `[{ column: price, min: 0 }]`; rows below `min` are rejected. @default [] */
    numeric?: { column: string; min?: number }[];
  };
  events: {
    /** Required. The event types the account emits; other values are rejected as unknown. */
    types: string[];
    /** Required. The event type that counts as a purchase (the label). */
    purchase: string;
  };
  validation?: {
    /** Events before this date (00:00 UTC) or instant (ISO 8601 with offset) are rejected as out of range. @default none */
    validFrom?: string;
    /** Events at or after this date or instant are rejected as out of range. @default none */
    validTo?: string;
    /**
     * The run fails if more than this share of rows is rejected (every reason counted in the summary: malformed
     * CSV lines, rule breaks and duplicates). @default 0.01
     */
    maxRejectedShare?: number;
    /**
     * Freshness: the run refuses to build (exit 4) when the input's latest valid event is older than this
     * before D (00:00 UTC), e.g. a feed that stopped. `--allow-stale` overrides. @default '2d'
     */
    maxStaleness?: string;
    /**
     * Freshness: the run refuses to build (exit 4) when the last day before D holds fewer events than this
     * share of the mean of the 7 days before it (a feed that landed only in part). 0 turns the check off;
     * `--allow-stale` overrides. @default 0.2
     */
    minLastDayShare?: number;
  };
  label: {
    /** Required. The label is a purchase in [D, D + horizonDays). */
    horizonDays: number;
  };
  sequence?: {
    /** Features use events in [D − lookbackDays, D). @default 30 */
    lookbackDays?: number;
    /** The last maxLength events of each customer. @default 50 */
    maxLength?: number;
  };
  features?: {
    /**
     * Windows, in days before the as-of instant, over which the aggregate features count events and sum the
     * numeric columns (per product category and overall; see coordinator/features). Each ≤ lookbackDays.
     * @default [1, 7, 28] where shorter than the lookback, and the whole lookback
     */
    windowsDays?: number[];
  };
  training?: {
    /**
     * Point-in-time training snapshots stacked into one training set: as of D − H, D − 2H, … (N dates), each
     * with its own features and labels. Validation customers are split by customer, so no customer is in both. @default 1
     */
    snapshots?: number;
  };
  vocabulary?: {
    /** Items and categories seen fewer times in the training window map to 1 (unknown). @default 2 */
    minCount?: number;
    /** At most this many tokens per vocabulary, most frequent first (plus 0 = pad, 1 = unknown). @default 50000 */
    maxSize?: number;
  };
  products?: {
    /** Model "any purchase" as the product named `any`. @default true */
    overall?: boolean;
    /**
     * Also model the N categories with the most distinct buyers in the training window: the training set's
     * feature and label days [D − H − L, D), ties by category value. @default 0
     */
    topCategories?: number;
    /** Also model these categories (values of the category column); one without a purchase in the input is an error. @default [] */
    categories?: string[];
  };
  sampling?: {
    /** Keep this share of training customers without any purchase in the label window; kept ones get weight 1/rate. @default 1 */
    negativeRate?: number;
  };
  shards?: {
    /** Customers are hashed into this many shards. @default 8 */
    count?: number;
    /** Rows per Arrow record batch inside a shard. @default 4096 */
    batchRows?: number;
  };
  cluster?: {
    /** Local worker processes to start (env local). @default 2 */
    workers?: number;
    /** Connect to these worker addresses (host:port) instead of starting processes. @default [] */
    addresses?: string[];
    /** Shards in flight per worker. @default 2 */
    inFlightPerWorker?: number;
    /** A worker silent this long is presumed dead. @default '30s' */
    heartbeatTimeout?: string;
    /** A shard that fails on this many different workers fails the run. @default 3 */
    maxAttemptsPerShard?: number;
  };
  model?: {
    /**
     * Which models to train: `logistic` (one logistic regression per product on the aggregate features), `lstm` (one
     * binary LSTM per product, with the aggregate features beside the sequence) and/or `attention` (one LSTM with
     * attention keyed by product, likewise). @default ['logistic', 'lstm', 'attention']
     */
    architectures?: Architecture[];
    /** @default 16 */
    embeddingDim?: number;
    /** @default 32 */
    hiddenUnits?: number;
    /** @default 16 */
    denseUnits?: number;
    /** @default 0.01 */
    learningRate?: number;
    /** @default 128 */
    batchSize?: number;
    /** @default 16 */
    epochs?: number;
    /** Stop after this many epochs without a better validation AUC. @default 6 */
    patience?: number;
    /**
     * Data-parallel replicas the training shards are split into (capped at shards.count). The trained
     * weights depend on it and never on how many workers join or die; workers beyond it idle while training.
     * @default 1
     */
    replicas?: number;
    /** Share of training customers held out for validation (by customer hash). @default 0.2 */
    validationShare?: number;
    /** Positive-class weight: a number, or 'balanced' (negatives/positives). @default 'balanced' */
    classWeight?: number | 'balanced';
    /** @default 7 */
    seed?: number;
    /**
     * The lstm and attention models start as the count model (their wide part at its coefficients, their sequence
     * term at zero) and keep that wide part fixed while the sequence part trains: it learns what the counts miss,
     * such as the order of events. false: the wide part trains too. @default true
     */
    freezeWide?: boolean;
    /**
     * The lstm and attention models embed the item of each event (when `columns.item` maps one); off, they read
     * its category, event type, timing and numeric values. Off by default: with thousands of items and hundreds
     * of buyers per product, item embeddings memorise the training buyers instead of learning patterns that
     * carry to new customers. @default false
     */
    itemEmbedding?: boolean;
  };
  tuning?: {
    /** Random-search trials per architecture (0 = use `model` as given). @default 0 */
    trials?: number;
  };
  ensemble?: {
    /** How a product's model scores combine. @default 'mean' */
    method?: 'mean' | 'fitted';
  };
  /**
   * Actions per product, each by a (calibrated) score threshold or by a share of the product's customers
   * by rank, not both, and all entries of one kind. Thresholds: the highest reached wins (listed in any
   * order). Shares: in list order, the first takes the top `topShare` of customers, the next the
   * following ones, and so on (ties broken by customer id); the shares sum to at most 1.
   * E.g. `[{ name: in_store, topShare: 0.05 }, { name: sms, topShare: 0.15 }]`.
   * @default [{ name: in_store, minScore: 0.4 }, { name: sms, minScore: 0.2 }]
   */
  actions?: ({ name: string; minScore: number } | { name: string; topShare: number })[];
  champion?: {
    /** Publish, per product, the candidate (the ensemble or one model) best on the validation customers; false: always the ensemble. @default true */
    select?: boolean;
    /** Keep the last published model instead of this night's when this night's is worse beyond noise on the same validation customers. @default true */
    compareWithPrevious?: boolean;
    /** Below this many validation buyers a product publishes the mean of its models (with a warning) and keeps this night's models. @default 10 */
    minValidationPositives?: number;
    /** Bootstrap resamples behind "beyond noise" (a paired, stratified bootstrap of the AUC difference, fixed seed). @default 400 */
    resamples?: number;
  };
  calibration?: {
    /** 'platt': published scores are fitted to the validation customers' purchase rates (a logistic regression on the score's logit); 'none': raw scores. @default 'platt' */
    method?: 'platt' | 'none';
  };
  output?: {
    /** Where prediction tables, reports and run state go: a local folder, relative to the job file (URLs are refused). @default 'out' */
    dir?: string;
    /**
     * Permissions of everything a run writes that holds customer data (run folder, shards, quarantine,
     * checkpoints, models, scores, reports, audiences, exports), as a quoted octal file mode; folders get
     * x wherever r is set ('0600' → folders 0700). Set exactly, whatever the umask. @default '0600'
     */
    mode?: string;
    /** The same for the published prediction table (e.g. '0640': the warehouse loader's group reads it, folders 0750). @default output.mode */
    publishedMode?: string;
    /**
     * CSV cells (audiences, the CSV export) that start with =, +, -, @, tab or CR get a leading single quote,
     * and text cells are quoted, so spreadsheets do not run them as formulas. Turn off for machine consumers. @default true
     */
    csvFormulaGuard?: boolean;
    /**
     * Retention, applied after each successful run that publishes (and by `nextbuy gc` without --older-than):
     * run folders and CSV exports dated more than this many days before the run's date are removed
     * (whole days ≥ 1, or null to keep them all). Never removed: the published tables and audiences, the
     * latest committed date, models still in use, a date whose lock is held. @default { runsDays: null, exportsDays: null } (keep all)
     */
    retain?: {
      /** Run folders (shards, checkpoints, models, scores, the report) older than this many days go. @default null (keep all) */
      runsDays?: number | null;
      /** Exports (`exports/account=<a>/date=<d>/`) older than this many days go. @default null (keep all) */
      exportsDays?: number | null;
    };
  };
  security?: {
    /**
     * Mutual TLS between the coordinator and its workers: PEM paths (relative to the job file) of the
     * deployment's CA and the coordinator's certificate and key. Workers read theirs from NEXTBUY_TLS_*
     * (local workers get these same paths). @default null (plaintext: fine on loopback, warned about elsewhere)
     */
    tls?: { ca: string; cert: string; key: string } | null;
    /** Accept plaintext to non-loopback addresses without a warning. @default false */
    allowPlaintext?: boolean;
    /** Folders (relative to the job file) input files may live in, symlinks followed. @default [the job file's folder] */
    inputRoots?: string[];
  };
  resources?: {
    /** DuckDB memory_limit. @default '2GB' */
    memoryLimit?: string;
    /** DuckDB threads. @default all cores */
    threads?: number;
  };
}

export const ARCHITECTURES = ['logistic', 'lstm', 'attention'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

/** An action by score threshold, or by a share of each product's customers taken in rank order. */
export type { ActionRule } from '../coordinator/publish/actions.js';

/** The compiled job: every default filled in, every path absolute, every date in epoch milliseconds (UTC). */
export interface Job {
  account: string;
  /** Absolute path of the job file it came from. */
  file: string;
  input: {
    path: string;
    format: 'csv' | 'parquet';
    timeFormat: 'auto' | 'epoch_seconds' | 'epoch_millis' | 'iso';
    /** IANA name; optional so that Jobs built in code keep compiling. @default 'UTC' */
    timeZone?: string;
  };
  /** Each value is a column name or an expression, as written in the job file. */
  columns: {
    customer: string;
    time: string;
    eventType: string;
    item: string | null;
    category: string | null;
    numeric: { column: string; min: number | null }[];
  };
  events: { types: string[]; purchase: string };
  validation: {
    validFromMs: number | null;
    validToMs: number | null;
    maxRejectedShare: number;
    /** Optional so that Jobs built in code keep compiling; absent: no freshness check. */
    maxStalenessMs?: number;
    minLastDayShare?: number;
  };
  label: { horizonDays: number };
  sequence: { lookbackDays: number; maxLength: number };
  features: { windowsDays: number[] };
  training: { snapshots: number };
  vocabulary: { minCount: number; maxSize: number };
  products: { overall: boolean; topCategories: number; categories: string[] };
  sampling: { negativeRate: number };
  shards: { count: number; batchRows: number };
  cluster: {
    workers: number;
    addresses: string[];
    inFlightPerWorker: number;
    heartbeatTimeoutMs: number;
    maxAttemptsPerShard: number;
  };
  model: {
    architectures: Architecture[];
    embeddingDim: number;
    hiddenUnits: number;
    denseUnits: number;
    learningRate: number;
    batchSize: number;
    epochs: number;
    patience: number;
    replicas: number;
    validationShare: number;
    classWeight: number | 'balanced';
    seed: number;
    /** Optional so that Jobs built in code keep compiling. @default true */
    freezeWide?: boolean;
    /** Optional so that Jobs built in code keep compiling. @default false */
    itemEmbedding?: boolean;
  };
  tuning: { trials: number };
  ensemble: { method: 'mean' | 'fitted' };
  /** Threshold actions sorted by minScore, highest first; share actions in the job file's order. Never both kinds. */
  actions: ActionRule[];
  /** Always set by loadJob/compileJob; optional so that Jobs built in code (tests) keep compiling. Absent: DEFAULT_CHAMPION. */
  champion?: { select: boolean; compareWithPrevious: boolean; minValidationPositives: number; resamples: number };
  /** Always set by loadJob/compileJob. Absent: DEFAULT_CALIBRATION. */
  calibration?: { method: 'platt' | 'none' };
  /** Fields beyond `dir` are always set by loadJob/compileJob; optional so that Jobs built in code keep compiling (defaults: private modes, guard on). */
  output: { dir: string; mode?: FileModes; publishedMode?: FileModes; csvFormulaGuard?: boolean; retain?: RetainSettings };
  resources: { memoryLimit: string; threads: number | null };
  /**
   * Always set by loadJob/compileJob; optional so that Jobs built in code (tests) keep compiling.
   * Absent: plaintext, and no input-root check.
   */
  security?: {
    tls: { ca: string; cert: string; key: string } | null;
    allowPlaintext: boolean;
    /** Absolute, resolved folders the input must be inside (the job file's folder by default). */
    inputRoots: string[];
  };
}

/**
 * Training replicas (model.replicas). One: averaging n replicas' weights once per pass makes an epoch worth one
 * replica's 1/n of the steps, and the sequence models need the steps (measured on known truth: 1 replica learned
 * the order-of-events signal within 12 epochs, 4 replicas had not after 10).
 */
export const DEFAULT_REPLICAS = 1;
export const DAY_MS = 86_400_000;

export const DEFAULT_CHAMPION: NonNullable<Job['champion']> = { select: true, compareWithPrevious: true, minValidationPositives: 10, resamples: 400 };
/** output.retain, compiled: days, or null to keep all. */
export interface RetainSettings { runsDays: number | null; exportsDays: number | null }
export const DEFAULT_RETAIN: RetainSettings = { runsDays: null, exportsDays: null };
export const DEFAULT_CALIBRATION: NonNullable<Job['calibration']> = { method: 'platt' };
