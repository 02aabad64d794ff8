/** `nextbuy explain` as text: what it says of a customer whose events are all older than the lookback. */
import { describe, expect, test } from 'vitest';
import { formatExplanation } from '../jobs/explain-text.js';

describe('explain text', () => {
  test('a scored customer with no event in the lookback is told their events are older, not that there are none', () => {
    const text = formatExplanation({
      account: 'shop', date: '2017-12-05', customerId: '42', asOf: '2017-12-05', historyLength: 0, lookbackDays: 7,
      models: [{ model: 'lstm.any', modelVersion: 'v1', architecture: 'lstm', product: 'any', score: 0.12, byGradient: [], byAttention: null, byFeature: null }],
    });
    expect(text).toContain('0 events in the 7-day lookback');
    expect(text).toContain("(no events in the 7 days before 2017-12-05: the customer's older events are outside the lookback, so the model sees none)");
    expect(text).not.toContain('no events before the as-of date');
  });
});
