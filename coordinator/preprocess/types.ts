import type { Job } from '../../jobs/job.js';
import type { RejectReason } from './events.js';
import type { Freshness } from './freshness.js';
import type { Product, Vocabulary } from './vocab.js';

export type { RejectReason, Product, Vocabulary, Freshness };

export interface ShardFile {
  /** `<set>-<index>`, e.g. 'train-3'. */
  id: string;
  file: string;
  rows: number;
  bytes: number;
}

export interface ShardSet {
  name: 'train' | 'score';
  /** The set's as-of date (features strictly before it). */
  asOf: string;
  labelled: boolean;
  customers: number;
  /** customers with no event in the lookback */
  noHistory: number;
  /** Rows with label 1, per product name (after downsampling); empty when the set is not labelled. */
  positives: Record<string, number>;
  shards: ShardFile[];
}

export interface PreprocessStats {
  rowsRead: number;
  rowsAccepted: number;
  rejected: Record<RejectReason, number>;
  /** Valid rows outside every window this run needs (they can still make a customer known). */
  outsideWindow: number;
  quarantineFile: string | null;
  /** The freshness gate's findings (absent in runs from before it). */
  freshness?: Freshness;
  inputFiles: number;
  /** Threads the sequence pass ran on (resources.threads, at most one per shard; 1 for small inputs). */
  sequenceThreads?: number;
  /**
   * ms per step: validate, windows, vocabularies, sequences (splitting the events by shard, then every shard's
   * pass, wall time, less writing), shards (writing shard files, per thread)
   */
  timings: Record<string, number>;
}

export interface PreprocessOptions {
  job: Job;
  /** D, the night being scored: 'YYYY-MM-DD' (UTC). */
  scoreDate: string;
  /** Where shards and the quarantine go (created). */
  runDir: string;
  /** Which sets to build. @default ['train', 'score'] */
  sets?: ('train' | 'score')[];
  /** Reuse a frozen vocabulary/products (scoring with an earlier model). @default built from the training window */
  vocabulary?: Vocabulary;
  products?: Product[];
  onProgress?: (step: string, done: number, total: number | null) => void;
  /** Build even when the freshness gate finds the input stale (recorded in stats.freshness). @default false */
  allowStale?: boolean;
  /**
   * Below this many events the sequence pass runs on one thread whatever resources.threads says: starting
   * threads would cost more than they save. The output is the same either way. @default 250000
   */
  parallelFromEvents?: number;
}

export interface PreprocessResult {
  stats: PreprocessStats;
  vocabulary: Vocabulary;
  products: Product[];
  train?: ShardSet;
  score?: ShardSet;
  /** Names of the aggregate features, in the order of every shard row's `wide` values per product. */
  aggregateFeatures: string[];
}
