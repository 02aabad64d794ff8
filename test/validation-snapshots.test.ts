/**
 * Validation rows with several training snapshots: a customer validated once per snapshot is judged on its
 * snapshot-0 row (listed first), the row the training set's customer rows and the last night's scores refer to,
 * so a product's labels and every model's scores are of one date.
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import { alignedValidation } from '../coordinator/pipeline/evaluate-stage.js';
import type { ModelEntry, ModelsFile } from '../coordinator/pipeline/index.js';

async function model(root: string, name: string, architecture: ModelEntry['architecture'], product: string | null, validation: object): Promise<ModelEntry> {
  const dir = path.join(root, name);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'validation.json'), JSON.stringify(validation));
  return { name, architecture, product, modelVersion: `${name}-v1`, dir, bestEpoch: 1, validationAuc: 0.5, history: [], search: null };
}

test('a customer validated in three snapshots counts once, with its snapshot-0 label and scores', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-validation-snapshots-'));
  // Customers a and b, snapshots 0, 1, 2 each (snapshot 0 first, as the shards list them); c in snapshot 0 only.
  const ids = ['a', 'a', 'a', 'b', 'b', 'b', 'c'];
  const labels = [1, 0, 0, 0, 1, 1, 0];
  const models: ModelsFile = {
    runId: 'r',
    trainedAsOf: '2026-10-25',
    products: ['shoes', 'bags'],
    models: [
      await model(root, 'lstm.shoes', 'lstm', 'shoes', { customerIds: ids, scores: [0.9, 0.1, 0.2, 0.3, 0.8, 0.7, 0.4], labels }),
      // attention: [rows × products], shoes first
      await model(root, 'attention', 'attention', null, {
        customerIds: ids,
        scores: ids.flatMap((_, i) => [0.5 + i / 100, 0]),
        labels: labels.flatMap((y) => [y, 0]),
      }),
    ],
  };
  const v = await alignedValidation(new Map(), models, 'shoes');
  expect(v.ids).toEqual(['a', 'b', 'c']);
  expect(Array.from(v.labels)).toEqual([1, 0, 0]);
  const byName = new Map(v.models.map((m) => [m.name, Array.from(m.scores)]));
  expect(byName.get('lstm.shoes')).toEqual([0.9, 0.3, 0.4].map(Math.fround));
  expect(byName.get('attention')).toEqual([0.5, 0.53, 0.56].map(Math.fround));
});
