/**
 * The models a job plans: sequence models start as the count model and learn its residual (frozen wide part), and
 * read categories and event types rather than item ids unless the job asks for item embeddings.
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
  test('by default the sequence models embed categories and event types, not items, and keep the count model fixed', () => {
    const all = plans();
    expect(all.map((p) => p.name)).toEqual(['logistic.shoes', 'logistic.bags', 'lstm.shoes', 'lstm.bags', 'attention']);
    for (const p of all.filter((p) => p.spec.architecture !== 'logistic')) {
      expect(p.spec.vocabSizes).toEqual({ category: 40, event: 4 });
      expect(p.spec.frozenWide).toBe(true);
    }
    for (const p of all.filter((p) => p.spec.architecture === 'logistic')) expect(p.spec.frozenWide).toBeUndefined();
  });

  test('model.itemEmbedding and model.freezeWide: false turn both back', () => {
    for (const p of plans({ itemEmbedding: true, freezeWide: false }).filter((p) => p.spec.architecture !== 'logistic')) {
      expect(p.spec.vocabSizes).toEqual(vocab);
      expect(p.spec.frozenWide).toBeUndefined();
    }
  });

  test('without aggregate features there is nothing to freeze', () => {
    const job = compileJob(raw, '/jobs/shop.yaml');
    for (const p of planModels(job, ['shoes'], vocab, ['dt'], [], set)) expect(p.spec.frozenWide).toBeUndefined();
  });

  test('a job file that says model.itemEmbedding: "yes" is refused, naming the field', () => {
    expect(() => compileJob({ ...raw, model: { itemEmbedding: 'yes' } }, '/jobs/shop.yaml')).toThrow(/model\.itemEmbedding/);
  });
});
