/**
 * A partition's manifest, `_manifest.json`: the commit record. A partition exists for readers exactly
 * when its manifest does, and only the files it lists (with their checksums) belong to it.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PublishError } from '../../core/errors.js';
import type { EnsembleSpec } from '../ensemble/index.js';
import type { PartitionAction } from './actions.js';
import { PREDICTION_SCHEMA } from './schema.js';

/**
 * The published candidate as the orchestrator describes it (coordinator/pipeline's champion record fits
 * this shape): opaque here beyond the fields a reader checks first.
 */
export interface PublishedChampion {
  /** 'ensemble' or a model name. */
  candidate: string;
  /** 'this-night': chosen among this run's models; 'previous': the last published model kept scoring. */
  source: 'this-night' | 'previous';
  reason: string;
  calibration: unknown;
  [more: string]: unknown;
}

export const MANIFEST_NAME = '_manifest.json';

export interface ManifestFile {
  /** File name inside the partition folder. */
  name: string;
  rows: number;
  bytes: number;
  sha256: string;
}

export interface PartitionManifest {
  formatVersion: 1;
  account: string;
  date: string;
  product: string;
  runId: string;
  rowCount: number;
  files: ManifestFile[];
  modelVersions: string[];
  /** How the models' scores were combined, when the orchestrator passed it. */
  ensemble: EnsembleSpec | null;
  /** Which candidate (the ensemble, one model, or the last published model) scored this partition, why, and its calibration; null when not recorded. */
  champion?: PublishedChampion | null;
  inputWindow: { from: string; to: string };
  /** The rules that chose each row's action: thresholds highest first, or shares in order with the last rank each reaches. */
  actions: PartitionAction[];
  /** Rows per action, 'none' included. */
  actionCounts: Record<string, number>;
  scoredAt: string;
  createdAt: string;
  schema: { name: string; type: string }[];
}

export function manifestPath(partitionDir: string): string {
  return path.join(partitionDir, MANIFEST_NAME);
}

/** The committed manifest, or null when the partition was never committed. */
export async function readManifest(partitionDir: string): Promise<PartitionManifest | null> {
  const file = manifestPath(partitionDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new PublishError(`cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new PublishError(`${file} is not valid JSON: the partition is damaged; rerun publish for this date`, { cause: e });
  }
  const m = parsed as Partial<PartitionManifest>;
  const wellFormed =
    m.formatVersion === 1 &&
    typeof m.runId === 'string' &&
    typeof m.product === 'string' &&
    typeof m.rowCount === 'number' &&
    Array.isArray(m.files) &&
    m.files.every((f) => typeof f.name === 'string' && !f.name.includes('/') && !f.name.includes('\\') && typeof f.sha256 === 'string') &&
    m.files.reduce((sum, f) => sum + f.rows, 0) === m.rowCount;
  if (!wellFormed) {
    throw new PublishError(`${file} is not a nextbuy partition manifest (format 1): the partition is damaged; rerun publish for this date`);
  }
  return m as PartitionManifest;
}

export function schemaRecord(): { name: string; type: string }[] {
  return PREDICTION_SCHEMA.map((c) => ({ name: c.name, type: c.type }));
}
