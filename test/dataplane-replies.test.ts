import { expect, test } from 'vitest';
import { channelCredentials, serverCredentials } from '../proto/credentials.js';
import {
  REPLY_HEADROOM,
  allowInPlaceFraming,
  createServer,
  createWorkerClient,
  grpc,
  inPlaceFraming,
  shutdownServer,
  workerService,
  type ScoreReply,
  type ScoreRequest,
} from '../proto/index.js';
import { PayloadBuffers } from '../proto/payload-buffers.js';
import { decodeResults, encodeResults, readResultColumns } from '../proto/result-batch.js';
import { utf8BytesOf } from '../proto/shard-batch.js';
import { writeMessage } from '../proto/stream.js';

const score = workerService.Score!;

/** A result stream of `customers` rows, marked for in-place framing unless `framable` is false. */
function results(customers: number, framable = true): Buffer {
  const ids = Array.from({ length: customers }, (_, i) => `customer-${i}`);
  const scores = Float32Array.from(ids, (_, i) => i / customers);
  const arrow = encodeResults([{ customerIds: utf8BytesOf(ids), scored: { columns: [{ modelVersion: 'v1', product: 'any' }], scores } }], { headroom: REPLY_HEADROOM });
  if (framable) allowInPlaceFraming(arrow);
  return arrow;
}

/** What grpc-js's client hands the deserialiser: the message after its 5-byte prefix, in a fresh (8-byte aligned) buffer. */
function received(wire: Buffer): ScoreReply {
  const framed = Buffer.alloc(5 + wire.length);
  wire.copy(framed, 5);
  return score.responseDeserialize(framed.subarray(5)) as ScoreReply;
}

const idsIn = (arrow: Uint8Array) => decodeResults(arrow).flatMap((b) => readResultColumns(b).customerIds);

test('a Score reply framed in place: the same fields, no copy of the results, which land 8-byte aligned at the receiver', () => {
  for (const [shardId, customers] of [
    ['s', 1],
    ['shard-0007', 100],
    ['2026-11-23/nightly/shard-0042-of-0128', 5000],
  ] as const) {
    const arrow = results(customers);
    const reply: ScoreReply = { shard_id: shardId, attempt: 3, arrow, rows: customers, input_rows: customers };
    const wire = score.responseSerialize(reply);
    expect(wire.buffer).toBe(arrow.buffer); // serialised around the results, where they lie
    const back = received(wire);
    expect([back.shard_id, back.attempt, back.rows, back.input_rows]).toEqual([shardId, 3, customers, customers]);
    expect(Buffer.compare(back.arrow, arrow)).toBe(0);
    expect(back.arrow.byteOffset % 8).toBe(0);
    expect(idsIn(back.arrow)).toHaveLength(customers);
  }
});

test('a reply whose other fields do not fit the headroom, or whose results were not marked, is serialised by copy with the same fields', () => {
  const longId = 'x'.repeat(REPLY_HEADROOM * 2);
  for (const reply of [
    { shard_id: longId, attempt: 1, arrow: results(10), rows: 10, input_rows: 10 },
    { shard_id: 'shard-1', attempt: 1, arrow: results(10, false), rows: 10, input_rows: 10 },
  ]) {
    const wire = score.responseSerialize(reply);
    expect(wire.buffer).not.toBe(reply.arrow.buffer);
    const back = received(wire);
    expect(back.shard_id).toBe(reply.shard_id);
    expect(Buffer.compare(back.arrow, reply.arrow)).toBe(0);
  }
});

/**
 * Serves one Score call whose handler runs `reply` (after the client's header), over real gRPC on
 * 127.0.0.1; returns what the client received. The client reads nothing for its first `pauseMs`.
 */
async function receiveReplies(reply: (call: grpc.ServerDuplexStream<ScoreRequest, ScoreReply>) => Promise<void>, pauseMs = 0): Promise<ScoreReply[]> {
  const server = createServer();
  server.addService(workerService, {
    Score: (call: grpc.ServerDuplexStream<ScoreRequest, ScoreReply>) => {
      call.once('data', () => reply(call).then(() => call.end()));
    },
  });
  try {
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', serverCredentials(null), (e, p) => (e ? reject(e) : resolve(p))));
    const client = createWorkerClient(`127.0.0.1:${port}`, channelCredentials(null));
    try {
      const call = client.Score(new grpc.Metadata());
      const replies: ScoreReply[] = [];
      const ended = new Promise((resolve, reject) => call.on('data', (r: ScoreReply) => replies.push(r)).on('end', resolve).on('error', reject));
      if (pauseMs > 0) {
        call.pause();
        setTimeout(() => call.resume(), pauseMs);
      }
      call.write({ header: { shard_id: 'shard-9', attempt: 1, model_versions: ['v1'], products: [] } });
      call.end();
      await ended;
      return replies;
    } finally {
      client.close();
    }
  } finally {
    await shutdownServer(server);
  }
}

test('replies sent over gRPC framed in place (the prefix written before them, no copy) arrive intact', async () => {
  expect(inPlaceFraming.replies).toBe(true); // false: grpc-js's internals changed, see proto/in-place-framing.ts
  const sent = [1, 700, 20_000].map((customers, i) => ({ shard_id: 'shard-9', attempt: 1, arrow: results(customers), rows: customers, input_rows: i }));
  const replies = await receiveReplies(async (call) => {
    for (const reply of sent) await new Promise((resolve) => call.write(reply, resolve));
  });
  expect(replies.map((r) => [r.shard_id, r.input_rows, r.arrow.toString('hex')])).toEqual(sent.map((r) => [r.shard_id, r.input_rows, r.arrow.toString('hex')]));
  expect(replies.map((r) => idsIn(r.arrow).length)).toEqual([1, 700, 20_000]);
  for (const r of sent) {
    // gRPC's prefix (not compressed, message length) lies in the headroom, so HTTP/2 sent this very buffer.
    const headroom = Buffer.from(r.arrow.buffer, r.arrow.byteOffset - REPLY_HEADROOM, REPLY_HEADROOM);
    const prefixAt = headroom.findIndex((_, i) => i + 5 <= REPLY_HEADROOM && headroom[i] === 0 && headroom.readUInt32BE(i + 1) === REPLY_HEADROOM - i - 5 + r.arrow.length);
    expect(prefixAt).toBeGreaterThanOrEqual(0);
  }
});

test('replies written into pooled buffers, each given back once its write is flushed (as workers do), arrive intact', async () => {
  // The client reads nothing at first, so replies queue up in HTTP/2 (more than its 8 MiB window) while later ones are written.
  const buffers = new PayloadBuffers({ maxBuffers: 1 });
  const expected: string[] = [];
  const replies = await receiveReplies(async (call) => {
    for (let i = 0; i < 150; i++) {
      const customers = 4000 - (i % 7);
      const ids = Array.from({ length: customers }, (_, k) => `r${i}-${k}`);
      const arrow = encodeResults([{ customerIds: utf8BytesOf(ids), scored: { columns: [{ modelVersion: 'v1', product: 'any' }], scores: new Float32Array(customers).fill(i / 150) } }], {
        headroom: REPLY_HEADROOM,
        buffers,
      });
      allowInPlaceFraming(arrow);
      expected.push(arrow.toString('hex'));
      // Not waiting for the flush: the next reply takes the buffer only once this one's bytes have left.
      await writeMessage(call, { shard_id: 'shard-9', attempt: 1, arrow, rows: customers, input_rows: customers }, () => buffers.give(arrow));
      await new Promise((resolve) => setImmediate(resolve)); // as a worker waits for its next payload
    }
  }, 300);
  expect(replies.length).toBe(expected.length);
  expect(replies.findIndex((r, i) => r.arrow.toString('hex') !== expected[i])).toBe(-1);
  expect(buffers.stats.reused).toBeGreaterThan(0);
});
