import { beforeAll, describe, expect, test } from 'vitest';
import { fit, rowsOfSplit, selectBackend, type SequenceModel } from '../worker/model/index.js';
import { PLANTED_ITEM, PRODUCTS, RECENT, syntheticBatch, tinySpec } from './helpers/model.js';

const data = syntheticBatch({ size: 1600, maxLength: 12, seed: 3 });
const validation = rowsOfSplit(data, 1);
const models: Partial<Record<'lstm' | 'attention' | 'pooledOnly', SequenceModel>> = {};

beforeAll(async () => {
  await selectBackend({ log: () => {} });
  for (const architecture of ['lstm', 'attention'] as const) {
    models[architecture] = (await fit(tinySpec(architecture), [rowsOfSplit(data, 0)], [validation], { epochs: 6, patience: 2 })).model;
  }
  return () => Object.values(models).forEach((m) => m.dispose());
});

/** Validation customers who bought `product`: their planted event is the reason. */
function buyersOf(product: string): number[] {
  const k = PRODUCTS.indexOf(product);
  return Array.from({ length: validation.size }, (_, r) => r).filter((r) => validation.labels![r * PRODUCTS.length + k] === 1);
}

const isPlanted = (product: string) => (e: { tokens: { item?: number }; eventsAgo: number }) =>
  e.tokens.item === PLANTED_ITEM[product] && e.eventsAgo < RECENT;

describe.each(['lstm', 'attention'] as const)('explanations of the %s model', (architecture) => {
  test('gradient × input ranks the planted event first for nearly every buyer', () => {
    const buyers = buyersOf('shoes');
    expect(buyers.length).toBeGreaterThan(20);
    let hits = 0;
    for (const r of buyers) {
      const e = models[architecture]!.explain(validation, r, { top: 3, product: 'shoes' });
      expect(e.product).toBe('shoes');
      expect(e.byGradient.length).toBeLessThanOrEqual(3);
      if (isPlanted('shoes')(e.byGradient[0]!)) hits++;
    }
    expect(hits / buyers.length).toBeGreaterThan(0.85);
  });

  test('padding is never reported and a customer without history has no events to explain', () => {
    const model = models[architecture]!;
    const r = validation.historyLength.findIndex((n) => n > 0 && n < 5);
    const e = model.explain(validation, r, { top: 10 });
    expect(e.byGradient.length).toBe(validation.historyLength[r]);
    for (const ev of e.byGradient) expect(ev.position).toBeGreaterThanOrEqual(validation.maxLength - validation.historyLength[r]!);
    const empty = validation.historyLength.findIndex((n) => n === 0);
    expect(model.explain(validation, empty).byGradient).toEqual([]);
  });
});

test('an attention head that reads only its pooled states names the planted event by attention weight, for each product it explains', async () => {
  // With headReadsLastState (the planner's default) the head can read a recent event from the last hidden state
  // instead of attending to it: its attention lists then show where the pooling looked, not why the score is
  // high (gradient × input above says that). Without the last state, attention must find the planted event.
  const model = (await fit(tinySpec('attention', { headReadsLastState: undefined }), [rowsOfSplit(data, 0)], [validation], { epochs: 6, patience: 2 })).model;
  models.pooledOnly = model;
  for (const product of PRODUCTS) {
    const buyers = buyersOf(product);
    let hits = 0;
    for (const r of buyers) {
      const e = model.explain(validation, r, { top: 1, product });
      expect(e.byAttention).toBeDefined();
      if (isPlanted(product)(e.byAttention![0]!)) hits++;
    }
    expect(hits / buyers.length).toBeGreaterThan(0.85);
  }
  expect(models.lstm!.explain(validation, 0).byAttention).toBeUndefined();
});
