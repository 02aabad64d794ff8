/**
 * The models a job plans: sequence models read categories and event types rather than item ids unless the job
 * asks for item embeddings, and train their sequence part first (model.sequenceFirstEpochs).
 */
import { describe, expect, test } from 'vitest';
import { planModels } from '../coordinator/train/index.js';
import { compileJob } from '../jobs/job-file.js';

const raw = {
  account: 'shop-1',
  input: { path: 'events/*.parquet' },
  columns: { customer: 'cid', time: 'ts', eventType: 'kind', item: 'sku', category: 'cat' },
  events: { types: ['view', 'buy'], purchase: 'buy' },
  label: { horizonDays: 7 },
};
const vocab = { item: 5000, category: 40, event: 4 };
const set = { customers: 1000, positives: { shoes: 50, bags: 20 } };

function plans(model: Record<string, unknown> = {}) {
  const job = compileJob({ ...raw, model }, '/jobs/shop.yaml');
  return planModels(job, ['shoes', 'bags'], vocab, ['dt', 'age'], ['cat_n_buy_28d', 'all_days_since_event'], set);
}

describe('planned models', () => {
  test('by default the sequence models embed categories and event types, not items, and no model is planned frozen', () => {
    const all = plans();
    expect(all.map((p) => p.name)).toEqual(['logistic.shoes', 'logistic.bags', 'lstm.shoes', 'lstm.bags', 'attention']);
    for (const p of all.filter((p) => p.spec.architecture !== 'logistic')) expect(p.spec.vocabSizes).toEqual({ category: 40, event: 4 });
    // Freezing is the trainer's per-epoch decision (sequence first), never part of a stored spec.
    for (const p of all) expect(p.spec.frozenWide).toBeUndefined();
  });

  test('model.itemEmbedding turns item embeddings back on; model.sequenceFirstEpochs defaults to 4 and takes 0', () => {
    for (const p of plans({ itemEmbedding: true }).filter((p) => p.spec.architecture !== 'logistic')) expect(p.spec.vocabSizes).toEqual(vocab);
    expect(compileJob(raw, '/jobs/shop.yaml').model.sequenceFirstEpochs).toBe(4);
    expect(compileJob({ ...raw, model: { sequenceFirstEpochs: 0 } }, '/jobs/shop.yaml').model.sequenceFirstEpochs).toBe(0);
    expect(() => compileJob({ ...raw, model: { sequenceFirstEpochs: -1 } }, '/jobs/shop.yaml')).toThrow(/model\.sequenceFirstEpochs/);
  });

  test('the retired model.freezeWide is refused, naming what replaced it', () => {
    expect(() => compileJob({ ...raw, model: { freezeWide: true } }, '/jobs/shop.yaml')).toThrow(/model\.freezeWide is not a known field.*sequenceFirstEpochs/);
  });

  test('a job file that says model.itemEmbedding: "yes" is refused, naming the field', () => {
    expect(() => compileJob({ ...raw, model: { itemEmbedding: 'yes' } }, '/jobs/shop.yaml')).toThrow(/model\.itemEmbedding/);
  });
});
