/**
 * Helpers for the champion tests: seeded validation customers with a latent propensity, candidate
 * scorings of them with chosen noise (and scale, to mimic inflated raw scores), and a run folder in a
 * temp directory for the pipeline-level choice.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { RunFolder } from '../../coordinator/pipeline/index.js';
import { gaussian, seededRandom } from './evaluate.js';

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

export interface ValidationCustomers {
  ids: string[];
  labels: Int8Array;
  /** Each customer's true purchase probability. */
  truth: Float64Array;
  /** A model's view of them: the true logit plus `noise` standard deviations of noise, times `scale`, plus `shift`. */
  view(o: { noise: number; seed: number; scale?: number; shift?: number }): Float32Array;
}

export function validationCustomers(n: number, seed: number, baseLogit = -2): ValidationCustomers {
  const random = seededRandom(seed);
  const normal = gaussian(random);
  const latent = Float64Array.from({ length: n }, () => normal());
  const truth = latent.map((l) => sigmoid(baseLogit + 1.5 * l));
  const labels = Int8Array.from(truth, (p) => (random() < p ? 1 : 0));
  return {
    ids: Array.from({ length: n }, (_, i) => `v${String(i).padStart(6, '0')}`),
    labels,
    truth,
    view({ noise, seed: s, scale = 1, shift = 0 }) {
      const r = gaussian(seededRandom(s));
      return Float32Array.from(latent, (l) => sigmoid(scale * (baseLogit + 1.5 * (l + noise * r())) + shift));
    },
  };
}

export async function tempRunFolder(date = '2017-12-02'): Promise<RunFolder> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-champion-'));
  return {
    account: 'shop-1',
    date,
    runId: `shop-1-${date.replaceAll('-', '')}-test`,
    dir,
    modelsDir: path.join(dir, 'models'),
    scoresDir: path.join(dir, 'scores'),
    reportDir: path.join(dir, 'report'),
    outDir: path.join(dir, 'out'),
  };
}
