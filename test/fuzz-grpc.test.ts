/**
 * Fuzzing the gRPC Score stream of a real worker process: mutated protobuf ScoreRequest messages
 * (truncated, bit-flipped, oversized, wrong field types, an Arrow body of another schema) sent as raw
 * bytes. Every call ends with a status — never a hang — and the worker stays up and keeps scoring
 * correctly. Messages above the worker's size limit are refused with RESOURCE_EXHAUSTED.
 */
import { expect, test } from 'vitest';
import { ProtocolError } from '../core/errors.js';
import type { SessionSigner } from '../proto/handshake.js';
import { channelOptions, grpc, type HealthReply } from '../proto/index.js';
import { RUN_ID, TEST_TOKEN, expectEveryCustomerOnce, rawUnary, scoreAll, withCluster, writeSampleShards } from './helpers/cluster.js';
import { sessionWith, signed } from './helpers/session.js';
import { fuzz, loadSeeds, prng, scaledCases } from './fuzz/mutate.js';

const LIMIT = 1 << 20;
const SCORE = '/nextbuy.v1.Worker/Score';

/** One Score call of raw protobuf messages; resolves with its final status. */
function rawCall(address: string, session: SessionSigner, messages: Uint8Array[]): Promise<grpc.StatusObject> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), channelOptions());
  const md = signed(session, 'Score');
  const call = client.makeBidiStreamRequest<Buffer, Buffer>(SCORE, (b) => b, (b) => b, md, { deadline: Date.now() + 20_000 });
  return new Promise((resolve) => {
    call.on('data', () => {});
    call.on('error', () => {});
    call.on('status', (s) => {
      client.close();
      resolve(s);
    });
    for (const m of messages) call.write(Buffer.from(m));
    call.end();
  });
}

test('every mutated Score stream ends with a status, and the worker keeps serving', async () => {
  const sample = await writeSampleShards({ shards: 3, customersPerShard: 60, batchRows: 30, seed: 41 });
  try {
    await withCluster({ workers: 1, env: { NEXTBUY_MAX_MESSAGE_BYTES: String(LIMIT) } }, async ({ pool, process: proc }) => {
      const address = pool.workers()[0]!.address;
      const session = await sessionWith(address, { token: TEST_TOKEN, runId: RUN_ID, account: 'test' });
      const seeds = await loadSeeds('grpc');
      const header = seeds.find((s) => s.name === 'header.bin')!.bytes;
      const arrow = seeds.find((s) => s.name === 'arrow.bin')!.bytes;
      const order = prng(99);
      const codes = new Map<string, number>();

      // An oversized message is refused by the size limit, not read.
      const huge = new Uint8Array(LIMIT + 1024);
      huge.set(arrow.subarray(0, 8));
      const over = await rawCall(address, session, [header, huge]);
      expect(over.code).toBe(grpc.status.RESOURCE_EXHAUSTED);

      const report = await fuzz({
        target: 'grpc',
        cases: scaledCases(300),
        seed: 5,
        timeoutMs: 25_000,
        mutate: { hugeBytes: 2 * LIMIT },
        run: async (input) => {
          // The mutant goes where its kind of message goes; sometimes the header is dropped or doubled.
          const r = order();
          const messages = r < 0.45 ? [input, arrow] : r < 0.85 ? [header, input] : r < 0.95 ? [input] : [header, header, input, input];
          const status = await rawCall(address, session, messages);
          codes.set(grpc.status[status.code]!, (codes.get(grpc.status[status.code]!) ?? 0) + 1);
          if (proc('local-0').child.exitCode !== null) throw new Error('the worker process exited');
          // grpc-js itself answers INTERNAL "Error deserializing request" for bytes that are not a ScoreRequest:
          // a refusal before our code runs. Any other INTERNAL/UNKNOWN would be our handler failing.
          const undecodable = status.code === grpc.status.INTERNAL && status.details === 'Error deserializing request';
          if (!undecodable && (status.code === grpc.status.INTERNAL || status.code === grpc.status.UNKNOWN)) throw new Error(`worker failed inside: ${status.details}`);
          if (status.code !== grpc.status.OK) throw new ProtocolError(`${grpc.status[status.code]}: ${status.details}`);
        },
      });
      if (report.findings.length) console.error(report.findings.join('\n'));
      expect(report.findings).toEqual([]);
      expect(codes.get('INVALID_ARGUMENT') ?? 0).toBeGreaterThan(0);

      const health = await rawUnary<HealthReply>(address, 'Health', {});
      expect(health.state).toBe('SERVING');
      expectEveryCustomerOnce(await scoreAll(pool, sample.shards), sample.customers, sample.shards);
    });
  } finally {
    await sample.cleanup();
  }
});
