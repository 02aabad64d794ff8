/**
 * Training checkpoints, written after every epoch: the averaged weights, the best weights so far and the
 * history. A trainer killed at any point resumes from the last one and, with the same seed, ends with the
 * same weights as an uninterrupted run (workers restart their optimizer state at every epoch).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { makeDir } from '../../core/file-modes.js';
import path from 'node:path';
import type { ModelSpec } from '../../proto/model-spec.js';
import type { ValidateOutput } from '../../worker/engine.js';
import { readJson } from '../pipeline/run-folder.js';
import { writeFileDurably, writeJsonDurably } from '../../core/durable-fs.js';
import type { EpochMetrics } from './trainer.js';

export interface CheckpointState {
  specHash: string;
  /** Last completed epoch (1-based). */
  epoch: number;
  bestEpoch: number;
  bestAuc: number;
  history: EpochMetrics[];
}

export interface Checkpoint {
  state: CheckpointState;
  weights: Float32Array;
  best: Float32Array;
  bestValidation: ValidateOutput;
}

export function specHash(spec: ModelSpec, extra: unknown): string {
  return createHash('sha256').update(JSON.stringify({ spec, extra })).digest('hex').slice(0, 16);
}

export async function saveCheckpoint(dir: string, c: Checkpoint): Promise<void> {
  await makeDir(dir);
  await writeFileDurably(path.join(dir, 'weights.f32'), bytesOf(c.weights));
  await writeFileDurably(path.join(dir, 'best.f32'), bytesOf(c.best));
  await writeJsonDurably(path.join(dir, 'best-validation.json'), {
    customerIds: c.bestValidation.customerIds,
    scores: Array.from(c.bestValidation.scores),
    labels: Array.from(c.bestValidation.labels),
  });
  // state.json last: it is what marks the checkpoint complete.
  await writeJsonDurably(path.join(dir, 'state.json'), c.state);
}

/** The checkpoint in `dir` if one exists for this spec, else null. */
export async function loadCheckpoint(dir: string, hash: string): Promise<Checkpoint | null> {
  const state = await readJson<CheckpointState>(path.join(dir, 'state.json'));
  if (!state || state.specHash !== hash) return null;
  const v = await readJson<{ customerIds: string[]; scores: number[]; labels: number[] }>(path.join(dir, 'best-validation.json'));
  if (!v) return null;
  return {
    state,
    weights: await readFloats(path.join(dir, 'weights.f32')),
    best: await readFloats(path.join(dir, 'best.f32')),
    bestValidation: { customerIds: v.customerIds, scores: Float32Array.from(v.scores), labels: Int8Array.from(v.labels) },
  };
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function readFloats(file: string): Promise<Float32Array> {
  const b = await readFile(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
