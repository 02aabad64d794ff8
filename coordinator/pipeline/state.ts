/** What each task leaves in the run folder for the next one (all JSON, written atomically). */
import type { ModelSpec } from '../../proto/model-spec.js';
import path from 'node:path';
import { InputError } from '../../core/errors.js';
import type { PreprocessResult } from '../preprocess/index.js';
import type { EpochMetrics } from '../train/index.js';
import { readJson, type RunFolder } from './run-folder.js';
import { writeJsonDurably } from '../../core/durable-fs.js';

export type StageName = 'validate' | 'windows' | 'vocabularies' | 'sequences' | 'shards' | 'train' | 'score' | 'ensemble' | 'evaluate' | 'publish';

export interface RunState {
  runId: string;
  account: string;
  date: string;
  /** Hash of the input files' names (relative to the input root), sizes and modification times when preprocess ran. */
  inputFingerprint: string | null;
  /** Tasks finished, with when and how long. */
  done: Partial<Record<'preprocess' | 'train' | 'score' | 'evaluate' | 'publish', { at: string; ms: number }>>;
  timings: Partial<Record<StageName, number>>;
}

export interface ModelEntry {
  name: string;
  architecture: ModelSpec['architecture'];
  product: string | null;
  modelVersion: string;
  /** Artifact folder. */
  dir: string;
  bestEpoch: number;
  validationAuc: number;
  history: EpochMetrics[];
  search: unknown;
}

export interface ModelsFile {
  runId: string;
  /** As-of date of the training sequences (date − horizon). */
  trainedAsOf: string;
  products: string[];
  models: ModelEntry[];
}

export const files = (f: RunFolder) => ({
  state: path.join(f.dir, 'run.json'),
  preprocess: path.join(f.dir, 'preprocess.json'),
  models: path.join(f.dir, 'models.json'),
  ensemble: path.join(f.dir, 'ensemble.json'),
  evaluation: path.join(f.dir, 'evaluation.json'),
  /** The last successful invocation's summary (summary-file.ts). */
  summary: path.join(f.dir, 'summary.json'),
  latestModels: path.join(f.outDir, 'models', `account=${f.account}`, 'latest.json'),
});

export async function readState(f: RunFolder): Promise<RunState | null> {
  return readJson<RunState>(files(f).state);
}

export async function writeState(f: RunFolder, s: RunState): Promise<void> {
  await writeJsonDurably(files(f).state, s);
}

/** Reads what an earlier task left, or says which task to run first. */
export async function requireJson<T>(file: string, task: string, f: RunFolder): Promise<T> {
  const v = await readJson<T>(file);
  if (v === null) {
    throw new InputError(`no ${path.basename(file)} for account ${f.account} on ${f.date} in ${f.dir}: run 'nextbuy ${task} --account ${f.account} --date ${f.date}' first (or 'nextbuy run')`);
  }
  return v;
}

export type StoredPreprocess = PreprocessResult;
