import { expect, test } from 'vitest';
import { PayloadBuffers } from '../proto/payload-buffers.js';

const MiB = 1024 * 1024;

test('a buffer given back is taken again; the smallest one that fits is chosen', () => {
  const pool = new PayloadBuffers();
  const small = pool.take(10);
  const large = pool.take(3 * MiB);
  expect(small.length).toBe(MiB); // rounded up, so payloads of nearby sizes share buffers
  pool.give(large);
  pool.give(small.subarray(5, 8)); // any view gives back its whole buffer
  expect(pool.take(100).buffer).toBe(small.buffer);
  expect(pool.take(2 * MiB).buffer).toBe(large.buffer);
  expect(pool.take(100).buffer).not.toBe(small.buffer); // both taken: a fresh one
  expect(pool.stats).toEqual({ taken: 5, reused: 2 });
});

test('copyOf puts the bytes at the start of a pooled buffer, 8-byte aligned for Arrow', () => {
  const pool = new PayloadBuffers();
  const source = Buffer.alloc(1000);
  for (let i = 0; i < source.length; i++) source[i] = i % 251;
  const copy = pool.copyOf(source.subarray(3, 803));
  expect(copy.byteOffset).toBe(0);
  expect(Buffer.compare(copy, source.subarray(3, 803))).toBe(0);
  pool.give(copy);
  const again = pool.copyOf(Buffer.from([9, 8, 7]));
  expect(again.buffer).toBe(copy.buffer);
  expect([...again]).toEqual([9, 8, 7]);
});

test('memory the pool did not allocate is never taken in, nor is one buffer kept twice', () => {
  const pool = new PayloadBuffers();
  const foreign = Buffer.alloc(2 * MiB);
  pool.give(foreign);
  pool.give(Buffer.from('small strings share a slab with other buffers'));
  expect(pool.take(10).buffer).not.toBe(foreign.buffer);
  const mine = pool.take(10);
  pool.give(mine);
  pool.give(mine);
  expect(pool.take(10).buffer).toBe(mine.buffer);
  expect(pool.take(10).buffer).not.toBe(mine.buffer);
});

test('the pool keeps at most maxBuffers buffers and maxBytes bytes', () => {
  const pool = new PayloadBuffers({ maxBuffers: 2, maxBytes: 3 * MiB });
  const [a, b, c] = [pool.take(1), pool.take(1), pool.take(1)];
  for (const x of [a, b, c]) pool.give(x);
  const reused = new Set([pool.take(1).buffer, pool.take(1).buffer, pool.take(1).buffer]);
  expect([a, b].every((x) => reused.has(x.buffer))).toBe(true);
  expect(reused.has(c.buffer)).toBe(false);

  const big = pool.take(4 * MiB);
  pool.give(big); // over maxBytes: dropped
  expect(pool.take(4 * MiB).buffer).not.toBe(big.buffer);
});
