import { expect, test } from 'vitest';
import { AggregateAccumulator, aggregateLayout, transformAggregate, type AggregateFeature } from '../coordinator/features/index.js';
import { DAY_MS } from '../jobs/job.js';

/** A seeded LCG in [0, 1): the same events on every run. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

interface TestEvent {
  ts: number;
  type: number;
  /** Its product category's slot, 0 when none. */
  slot: number;
  value: number;
}

const layout = aggregateLayout({ eventTypes: ['view', 'cart', 'fav', 'buy'], purchase: 'buy', numericColumns: ['price'], windowsDays: [1, 7, 28], lookbackDays: 28 });
/** Products: `any` (slot 0) and two categories (slots 1 and 2). */
const slotOf = Int32Array.of(0, 1, 2);
const ASOF = Date.UTC(2026, 9, 27);

/** A feature's raw value by its definition, read from the events themselves. */
function rawByDefinition(f: AggregateFeature, events: TestEvent[], slot: number, firstTs: number): number {
  if (f.kind === 'tenure') return Number.isNaN(firstTs) ? Number.NaN : (ASOF - firstTs) / DAY_MS;
  const scoped = f.scope === 'all' || slot === 0 ? events : events.filter((e) => e.slot === slot);
  const inWindow = scoped.filter((e) => ASOF - e.ts <= f.windowDays * DAY_MS);
  switch (f.kind) {
    case 'count':
      return inWindow.filter((e) => e.type === f.index).length;
    case 'sum':
      return inWindow.reduce((s, e) => s + e.value, 0);
    case 'mean':
      return inWindow.length === 0 ? 0 : inWindow.reduce((s, e) => s + e.value, 0) / inWindow.length;
    case 'days': {
      const matching = scoped.filter((e) => f.index < 0 || e.type === f.index);
      return matching.length === 0 ? Number.NaN : (ASOF - Math.max(...matching.map((e) => e.ts))) / DAY_MS;
    }
  }
}

test('every product row holds transformAggregate() of each feature by its definition, for many random customers', () => {
  const next = random(21);
  const acc = new AggregateAccumulator(layout, slotOf, 3);
  const width = layout.features.length;
  for (let customer = 0; customer < 300; customer++) {
    // Some customers have no event in a category, some a single event, some thousands (counts past the log table).
    const n = customer % 50 === 0 ? 5_000 : Math.floor(next() * 12);
    const events: TestEvent[] = Array.from({ length: n }, () => ({
      ts: ASOF - Math.floor(next() * 28 * DAY_MS),
      type: Math.floor(next() * 4),
      slot: Math.floor(next() * 3),
      value: Math.round((next() - 0.3) * 1_000) / 10,
    })).sort((a, b) => a.ts - b.ts);
    const firstTs = next() < 0.2 ? Number.NaN : ASOF - 40 * DAY_MS;
    acc.reset();
    const numeric = new Float64Array(1);
    for (const e of events) {
      numeric[0] = e.value;
      acc.add(e.ts, ASOF, e.type, e.slot, numeric, 0);
    }
    const out = new Float32Array(slotOf.length * width + 3).fill(-1);
    acc.writeTransformed(ASOF, firstTs, out, 3);
    expect(Array.from(out.subarray(0, 3))).toEqual([-1, -1, -1]);
    for (let p = 0; p < slotOf.length; p++) {
      layout.features.forEach((f, j) => {
        const want = Math.fround(transformAggregate(f.kind, rawByDefinition(f, events, slotOf[p]!, firstTs), layout.lookbackDays));
        const got = out[3 + p * width + j]!;
        if (Math.abs(got - want) > 1e-6 * Math.max(1, Math.abs(want))) throw new Error(`customer ${customer}, product ${p}, ${f.name}: ${got}, by definition ${want}`);
      });
    }
  }
});
