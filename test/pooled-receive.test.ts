import { expect, test } from 'vitest';
import { readShardPayloads } from '../coordinator/cluster/index.js';
import { workerServiceReceivingInto } from '../proto/index.js';
import { PayloadBuffers } from '../proto/payload-buffers.js';
import { POOLED_MESSAGE_MIN_BYTES, PooledMessageDecoder, receiveBuffers, receiveLargeMessagesPooled } from '../proto/pooled-receive.js';
import { customerId, sampleBatch, seeded, writeSampleShards, writeShardFile } from './helpers/cluster.js';
import { sendToScoreSink } from './helpers/score-sink.js';

/** gRPC's framing of one message: not compressed, 4-byte big-endian length, the bytes. */
function framed(message: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

test('messages split anywhere across chunks come out whole; large ones in pooled buffers, small ones not', () => {
  const random = seeded(91);
  const bytes = (n: number) => Buffer.from(Uint8Array.from({ length: n }, () => Math.floor(random() * 256)));
  const small = [17, 0, 4, 1, 300].map(bytes);
  const mixed = [small[0]!, bytes(POOLED_MESSAGE_MIN_BYTES + 3), small[1]!, bytes(POOLED_MESSAGE_MIN_BYTES), small[3]!];
  // Chunks of 1 to 6 bytes split every prefix; chunks up to 70,000 bytes (some tiny) split the large messages.
  for (const [messages, chunk] of [[small, () => 1 + Math.floor(random() * 6)], [mixed, () => (random() < 0.3 ? 1 + Math.floor(random() * 6) : 1 + Math.floor(random() * 70_000))], [mixed, () => Infinity]] as const) {
    const wire = Buffer.concat(messages.map(framed));
    const pool = new PayloadBuffers();
    const decoder = new PooledMessageDecoder(-1, pool);
    const out: Buffer[] = [];
    for (let at = 0; at < wire.length; ) {
      const n = Math.min(wire.length - at, chunk());
      out.push(...decoder.write(wire.subarray(at, at + n)));
      at += n;
    }
    expect(out.map((m) => m.toString('hex'))).toEqual(messages.map((m) => framed(m).toString('hex'))); // each with its prefix, as grpc-js's decoder yields it
    expect(out.map((m) => pool.owns(m))).toEqual(messages.map((m) => m.length >= POOLED_MESSAGE_MIN_BYTES));
    for (const m of out.filter((m) => pool.owns(m))) expect(m.byteOffset).toBe(0); // the message's Arrow bytes keep their alignment
  }
});

test('a message over the limit is refused in the words grpc-js uses (the server answers RESOURCE_EXHAUSTED)', () => {
  const decoder = new PooledMessageDecoder(100);
  expect(() => decoder.write(framed(Buffer.alloc(101)))).toThrow('Received message larger than max (101 vs 100)');
  expect(new PooledMessageDecoder(100).write(framed(Buffer.alloc(100)))[0]!.length).toBe(105);
});

test('a worker-side server receives large Score payloads straight into its pool: intact, aligned, not copied again', async () => {
  expect(receiveLargeMessagesPooled()).toBe(true); // false: grpc-js's internals changed, see proto/pooled-receive.ts
  const sample = await writeSampleShards({ shards: 1, customersPerShard: 1 });
  try {
    const random = seeded(92);
    const file = `${sample.dir}/large.arrows`;
    await writeShardFile(file, [0, 1].map((b) => sampleBatch(Array.from({ length: 3000 }, (_, i) => customerId(b, i)), random, 50)));
    const sent: Buffer[] = [];
    for await (const p of readShardPayloads(file, { maxPayloadBytes: 64 * 1024 * 1024, targetPayloadBytes: 1 })) sent.push(p.bytes);
    expect(Math.min(...sent.map((s) => s.length))).toBeGreaterThan(POOLED_MESSAGE_MIN_BYTES);

    const received: { pooled: boolean; aligned: boolean; hex: string }[] = [];
    const takenBefore = receiveBuffers.stats.taken;
    await sendToScoreSink(
      workerServiceReceivingInto(receiveBuffers),
      (arrow) => {
        received.push({ pooled: receiveBuffers.owns(arrow), aligned: arrow.byteOffset % 8 === 0, hex: Buffer.from(arrow).toString('hex') });
        receiveBuffers.give(arrow);
      },
      async (write) => {
        for (const bytes of sent) await write(bytes);
      },
    );
    expect(received).toEqual(sent.map((s) => ({ pooled: true, aligned: true, hex: s.toString('hex') })));
    expect(receiveBuffers.stats.taken - takenBefore).toBe(sent.length); // one buffer per payload: the decoder's, no copy
  } finally {
    await sample.cleanup();
  }
});
