/**
 * The job file: what a user writes (JobFile, friendly values with documented defaults) and the
 * one normalised form every stage reads (Job). `loadJob()` in ./job-file.ts compiles one into the other.
 */

/** A job file as written in YAML. Every field not marked required has the default shown. */
export interface JobFile {
  /** Required. Account name: lowercase letters, digits, '-' and '_' (it becomes a path component). */
  account: string;
  input: {
    /** Required. A file, a folder or a glob, relative to the job file. Hive folders `date=YYYY-MM-DD/` are pruned to the window. */
    path: string;
    /** @default from the file extension ('.csv', '.csv.gz' → csv; '.parquet' → parquet) */
    format?: 'csv' | 'parquet';
    /** How the time column is written. @default 'auto' (integers < 1e11 are epoch seconds, larger are millis; strings are ISO 8601) */
    timeFormat?: 'auto' | 'epoch_seconds' | 'epoch_millis' | 'iso';
  };
  /** Required. Which input column holds each field. */
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
    /** The run fails if more than this share of rows is rejected. @default 0.01 */
    maxRejectedShare?: number;
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
  vocabulary?: {
    /** Items and categories seen fewer times in the training window map to 1 (unknown). @default 2 */
    minCount?: number;
    /** At most this many tokens per vocabulary, most frequent first (plus 0 = pad, 1 = unknown). @default 50000 */
    maxSize?: number;
  };
  products?: {
    /** Model "any purchase" as the product named `any`. @default true */
    overall?: boolean;
    /** Also model the N most-bought categories of the training window. @default 0 */
    topCategories?: number;
    /** Also model these categories (values of the category column). @default [] */
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
    /** Which models to train: one binary LSTM per product, and/or one attention LSTM keyed by product. @default ['lstm', 'attention'] */
    architectures?: ('lstm' | 'attention')[];
    /** @default 16 */
    embeddingDim?: number;
    /** @default 32 */
    hiddenUnits?: number;
    /** @default 16 */
    denseUnits?: number;
    /** @default 0.005 */
    learningRate?: number;
    /** @default 128 */
    batchSize?: number;
    /** @default 8 */
    epochs?: number;
    /** Stop after this many epochs without a better validation AUC. @default 2 */
    patience?: number;
    /**
     * Data-parallel replicas the training shards are split into (capped at shards.count). The trained
     * weights depend on it and never on how many workers join or die; workers beyond it idle while training.
     * @default 4
     */
    replicas?: number;
    /** Share of training customers held out for validation (by customer hash). @default 0.2 */
    validationShare?: number;
    /** Positive-class weight: a number, or 'balanced' (negatives/positives). @default 'balanced' */
    classWeight?: number | 'balanced';
    /** @default 7 */
    seed?: number;
  };
  tuning?: {
    /** Random-search trials per architecture (0 = use `model` as given). @default 0 */
    trials?: number;
  };
  ensemble?: {
    /** How a product's model scores combine. @default 'mean' */
    method?: 'mean' | 'fitted';
  };
  /** Actions by score, highest threshold first. @default [{ name: in_store, minScore: 0.4 }, { name: sms, minScore: 0.2 }] */
  actions?: { name: string; minScore: number }[];
  output?: {
    /** Where prediction tables, reports and run state go, relative to the job file. @default 'out' */
    dir?: string;
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

export type Architecture = 'lstm' | 'attention';

/** The compiled job: every default filled in, every path absolute, every date in epoch milliseconds (UTC). */
export interface Job {
  account: string;
  /** Absolute path of the job file it came from. */
  file: string;
  input: { path: string; format: 'csv' | 'parquet'; timeFormat: 'auto' | 'epoch_seconds' | 'epoch_millis' | 'iso' };
  columns: {
    customer: string;
    time: string;
    eventType: string;
    item: string | null;
    category: string | null;
    numeric: { column: string; min: number | null }[];
  };
  events: { types: string[]; purchase: string };
  validation: { validFromMs: number | null; validToMs: number | null; maxRejectedShare: number };
  label: { horizonDays: number };
  sequence: { lookbackDays: number; maxLength: number };
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
  };
  tuning: { trials: number };
  ensemble: { method: 'mean' | 'fitted' };
  /** Sorted by minScore, highest first. */
  actions: { name: string; minScore: number }[];
  output: { dir: string };
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

/** Training replicas (model.replicas): balanced on 1, 2 and 4 workers. */
export const DEFAULT_REPLICAS = 4;
export const DAY_MS = 86_400_000;
