/**
 * Fuzzing the Arrow payload decoder a worker runs on every shard payload: decodeBatches and the dense
 * conversion (toSequenceBatch). Mutated IPC streams decode to valid batches or end in a ProtocolError,
 * never another exception, a hang or a runaway allocation.
 */
import { expect, test } from 'vitest';
import { ProtocolError } from '../core/errors.js';
import { decodeBatches, toSequenceBatch } from '../proto/shard-batch.js';
import { fuzz, scaledCases } from './fuzz/mutate.js';

test('every mutated shard payload decodes or is refused with a ProtocolError', async () => {
  const report = await fuzz({
    target: 'arrow',
    cases: scaledCases(3000),
    seed: 7,
    timeoutMs: 10_000,
    mutate: { hugeBytes: 64 * 1024, mutations: ['bitflip', 'byte', 'truncate', 'splice', 'delete', 'duplicate', 'huge'] },
    accept: (e) => e instanceof ProtocolError,
    run: async (input) => {
      for (const batch of decodeBatches(input)) {
        const dense = toSequenceBatch(batch);
        expect(dense.customerIds.length).toBe(dense.size);
        expect(dense.weight.length).toBe(dense.size);
      }
    },
  });
  if (report.findings.length) console.error(report.findings.join('\n'));
  expect(report.findings).toEqual([]);
  expect(report.outcomes.ProtocolError).toBeGreaterThan(0);
});
