import type { FileModes } from '../core/file-modes.js';

/**
 * The job file: what a user writes (JobFile, defined with its defaults and checks in ./job-schema.ts) and the
 * one normalised form every stage reads (Job). `loadJob()` in ./job-file.ts compiles one into the other.
 */

import type { ActionRule } from '../coordinator/publish/actions.js';

/**
 * A job file as written in YAML, with every field's description and default: the type of ./job-schema.ts's
 * schema (one definition for this type, the load-time checks and schema/job.schema.json).
 */
export type { JobFile } from './job-schema.js';

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
    /** Optional so that Jobs built in code keep compiling. @default DEFAULT_SEQUENCE_FIRST_EPOCHS */
    sequenceFirstEpochs?: number;
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
  /** Always set by loadJob/compileJob; optional so that Jobs built in code keep compiling. Absent: no push, no textfile. */
  observability?: ObservabilitySettings;
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
/**
 * Epochs a sequence model trains without its wide part before both train together. Measured on known truth
 * (20,000 customers, lstm.1002): given the aggregate features from the start, or started as the count model,
 * the LSTM stayed at the count model's AUC (0.865) for 8 epochs; trained alone it reached 0.871–0.877 within 4,
 * and with its wide part joining after 5 it reached 0.881–0.884 (Bayes-optimal 0.886).
 */
export const DEFAULT_SEQUENCE_FIRST_EPOCHS = 4;
export const DAY_MS = 86_400_000;

export const DEFAULT_CHAMPION: NonNullable<Job['champion']> = { select: true, compareWithPrevious: true, minValidationPositives: 10, resamples: 400 };
/** output.retain, compiled: days, or null to keep all. */
export interface RetainSettings { runsDays: number | null; exportsDays: number | null }
export const DEFAULT_RETAIN: RetainSettings = { runsDays: null, exportsDays: null };
/** observability, compiled: the textfile path is absolute. */
export interface ObservabilitySettings {
  pushgateway: { url: string; job: string } | null;
  textfile: string | null;
}
export const DEFAULT_CALIBRATION: NonNullable<Job['calibration']> = { method: 'platt' };
