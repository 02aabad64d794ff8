import { readFile, writeFile } from 'node:fs/promises';
import { RecordBatchFileWriter, type RecordBatch } from 'apache-arrow';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { readShardPayloads } from '../coordinator/cluster/index.js';
import { InputError } from '../core/errors.js';
import { PAYLOAD_HEADROOM, allowInPlaceFraming, inPlaceFraming, workerService, workerServiceReceivingInto } from '../proto/index.js';
import { PayloadBuffers } from '../proto/payload-buffers.js';
import { decodeBatches, toSequenceBatch } from '../proto/shard-batch.js';
import { lazySequenceBatch } from '../worker/lazy-batch.js';
import { customerId, sampleBatch, seeded, writeSampleShards, writeShardFile, type SampleShards } from './helpers/cluster.js';
import { sendToScoreSink } from './helpers/score-sink.js';

let sample: SampleShards;
let batches: RecordBatch[];
let file: string;
beforeAll(async () => {
  sample = await writeSampleShards({ shards: 1, customersPerShard: 1 });
  const random = seeded(81);
  batches = [0, 1, 2, 3, 4].map((b) => sampleBatch(Array.from({ length: 37 + b }, (_, i) => customerId(b, i)), random));
  file = `${sample.dir}/five.arrows`;
  await writeShardFile(file, batches);
});
afterAll(() => sample.cleanup());

async function collect(path: string, targetPayloadBytes: number) {
  const out = [];
  for await (const p of readShardPayloads(path, { maxPayloadBytes: 64 * 1024 * 1024, targetPayloadBytes })) out.push(p);
  return out;
}

const idsOf = (bs: RecordBatch[]) => bs.flatMap((b) => toSequenceBatch(b).customerIds);

test('one record batch per payload: each payload is a complete Arrow stream holding exactly that batch', async () => {
  const payloads = await collect(file, 1);
  expect(payloads.map((p) => [p.batches, p.rows])).toEqual(batches.map((b) => [1, b.numRows]));
  payloads.forEach((p, i) => {
    const decoded = decodeBatches(p.bytes);
    expect(decoded).toHaveLength(1);
    expect(toSequenceBatch(decoded[0]!)).toEqual(toSequenceBatch(batches[i]!));
  });
});

test('small batches are grouped up to the target size, in order, none lost', async () => {
  const payloads = await collect(file, 1024 * 1024);
  expect(payloads).toHaveLength(1);
  expect(payloads[0]!.batches).toBe(5);
  expect(idsOf(decodeBatches(payloads[0]!.bytes))).toEqual(idsOf(batches));
});

test('an Arrow IPC file (magic, stream, footer) is read as its stream; one without a leading schema is refused with what to do', async () => {
  const streamBytes = await readFile(file);
  // The IPC file layout of the spec: magic, the stream, a footer (here a dummy one: the reader stops at the end marker).
  const ipcFile = `${sample.dir}/five.arrow`;
  await writeFile(ipcFile, Buffer.concat([Buffer.from('ARROW1\0\0'), streamBytes, Buffer.from('footer'), Buffer.from('ARROW1')]));
  const payloads = await collect(ipcFile, 1);
  expect(idsOf(payloads.flatMap((p) => decodeBatches(p.bytes)))).toEqual(idsOf(batches));

  // apache-arrow's own file writer keeps the schema in the footer only.
  const writer = new RecordBatchFileWriter();
  for (const b of batches) writer.write(b);
  writer.finish();
  const footerOnly = `${sample.dir}/footer-only.arrow`;
  await writeFile(footerOnly, writer.toUint8Array(true));
  await expect(collect(footerOnly, 1)).rejects.toThrow(/footer-only\.arrow is an Arrow IPC file with its schema in the footer only: write shards as IPC streams/);
});

test('a truncated or empty shard file is an InputError naming the file', async () => {
  const truncated = `${sample.dir}/truncated.arrows`;
  const bytes = await readFile(file);
  await writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
  await expect(collect(truncated, 1)).rejects.toThrow(InputError);
  await expect(collect(truncated, 1)).rejects.toThrow(/truncated\.arrows is truncated/);
  const empty = `${sample.dir}/empty.arrows`;
  await writeFile(empty, new Uint8Array(0));
  await expect(collect(empty, 1)).rejects.toThrow(/empty\.arrows is empty/);
});

test('a payload framed in place decodes to the same bytes, 8-byte aligned for Arrow at the receiver', async () => {
  const score = workerService.Score!;
  for (const p of await collect(file, 1)) {
    const wire = score.requestSerialize({ arrow: p.bytes });
    const copy = score.requestSerialize({ arrow: Buffer.from(p.bytes) }); // not framable: plain protobuf
    // grpc-js's receiver keeps a 5-byte prefix in front of the message in a fresh buffer.
    const received = Buffer.alloc(5 + wire.length);
    wire.copy(received, 5);
    const decoded = score.requestDeserialize(received.subarray(5)) as { arrow: Buffer; body: string };
    expect(decoded.body).toBe('arrow');
    expect(Buffer.compare(decoded.arrow, p.bytes)).toBe(0);
    expect(decoded.arrow.byteOffset % 8).toBe(0);
    expect(Buffer.compare((score.requestDeserialize(copy) as { arrow: Buffer }).arrow, p.bytes)).toBe(0);
  }
  // Without headroom a buffer is never written before its start.
  const tight = Buffer.from([1, 2, 3]);
  allowInPlaceFraming(tight.subarray(0));
  expect(Buffer.compare((score.requestDeserialize(score.requestSerialize({ arrow: tight })) as { arrow: Buffer }).arrow, tight)).toBe(0);
});

test('a lazily densified batch equals the eager one, field by field', () => {
  for (const b of batches) {
    const lazy = lazySequenceBatch(b);
    expect(lazy.customerIds).toEqual(toSequenceBatch(b).customerIds);
    expect({ ...lazy }).toEqual(toSequenceBatch(b));
  }
});

test('with reuseBuffer, each payload is built in one buffer that the next payload and the next reader reuse', async () => {
  const seen: { buffer: ArrayBufferLike; ids: string[] }[] = [];
  for (let pass = 0; pass < 2; pass++) {
    // Each payload is used before the next is asked for, as a sender that waits for the flush does.
    for await (const p of readShardPayloads(file, { maxPayloadBytes: 64 * 1024 * 1024, targetPayloadBytes: 1, reuseBuffer: true })) {
      seen.push({ buffer: p.bytes.buffer, ids: idsOf(decodeBatches(p.bytes)) });
    }
  }
  expect(seen.map((s) => s.ids)).toEqual([...batches, ...batches].map((b) => idsOf([b])));
  expect(new Set(seen.map((s) => s.buffer)).size).toBe(1);
});

test('a worker receives each Score payload into its payload buffers: same bytes, aligned, and the buffer is reused once given back', async () => {
  const buffers = new PayloadBuffers();
  const score = workerServiceReceivingInto(buffers).Score!;
  const received: Buffer[] = [];
  for (const p of await collect(file, 1)) {
    const wire = score.requestSerialize({ arrow: p.bytes });
    const request = score.requestDeserialize(wire) as { arrow: Buffer };
    expect(Buffer.compare(request.arrow, p.bytes)).toBe(0);
    expect(request.arrow.byteOffset % 8).toBe(0);
    expect(request.arrow.buffer).not.toBe(wire.buffer); // a copy: grpc-js's message buffer is not kept
    expect(idsOf(decodeBatches(request.arrow))).toEqual(idsOf(decodeBatches(p.bytes)));
    received.push(request.arrow);
    buffers.give(request.arrow);
  }
  expect(new Set(received.map((r) => r.buffer)).size).toBe(1);
  // A header message carries no payload and takes no buffer.
  const header = score.requestDeserialize(score.requestSerialize({ header: { shard_id: 's', attempt: 1, model_versions: ['v'], products: [] } })) as { header: { shard_id: string } };
  expect(header.header.shard_id).toBe('s');
  expect(buffers.stats.taken).toBe(received.length);
});

test('payloads sent over gRPC from one reused buffer, framed in place (no copy), arrive intact: small ones and ones over 1 MiB', async () => {
  expect(inPlaceFraming.requests).toBe(true); // false: grpc-js's internals changed, see proto/in-place-framing.ts
  const random = seeded(82);
  const large = `${sample.dir}/large.arrows`;
  await writeShardFile(large, [0, 1, 2].map((b) => sampleBatch(Array.from({ length: 3000 + b }, (_, i) => customerId(b, i)), random, 50)));
  const expected = [...(await collect(file, 1)), ...(await collect(large, 1))].map((p) => Buffer.from(p.bytes));
  expect(expected.at(-1)!.length).toBeGreaterThan(1024 * 1024);
  const received: Buffer[] = [];
  const buffers = new Set<ArrayBufferLike>();
  await sendToScoreSink(
    workerService,
    (arrow) => received.push(Buffer.from(arrow)),
    async (write) => {
      for await (const p of mergeReaders([file, large])) {
        await write(p.bytes);
        // grpc-js's 5-byte prefix (not compressed, message length) was written into the headroom, not into a copy.
        const prefix = Buffer.from(p.bytes.buffer, p.bytes.byteOffset - PAYLOAD_HEADROOM, 5);
        expect(prefix[0]).toBe(0);
        expect(prefix.readUInt32BE(1)).toBe(PAYLOAD_HEADROOM - 5 + p.bytes.length);
        buffers.add(p.bytes.buffer);
      }
    },
  );
  expect(buffers.size).toBe(2); // the small file's buffer, then a larger one for the large file's payloads
  expect(received.map((r) => r.toString('hex'))).toEqual(expected.map((e) => e.toString('hex')));
});

/** The payloads of several shard files, one reusing reader after another (they share the pool). */
async function* mergeReaders(files: string[]) {
  for (const f of files) yield* readShardPayloads(f, { maxPayloadBytes: 64 * 1024 * 1024, targetPayloadBytes: 1, reuseBuffer: true });
}
