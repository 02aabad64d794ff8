/**
 * A Score stream over real gRPC on 127.0.0.1 into an in-process server that only collects payloads:
 * for tests of how payload bytes travel (framing on the sending side, assembly on the receiving side).
 */
import { channelCredentials, serverCredentials } from '../../proto/credentials.js';
import { createServer, createWorkerClient, grpc, shutdownServer, type ScoreRequest } from '../../proto/index.js';
import { writeFlushed } from '../../proto/stream.js';

/**
 * Serves `service`'s Score with a handler that passes each request's Arrow payload to `onPayload`, lets
 * `send` stream payloads to it (`write` resolves at the write's callback), and resolves once the server
 * has ended the stream.
 */
export async function sendToScoreSink(
  service: grpc.ServiceDefinition,
  onPayload: (arrow: Uint8Array) => void,
  send: (write: (arrow: Uint8Array) => Promise<void>) => Promise<void>,
): Promise<void> {
  const server = createServer();
  server.addService(service, {
    Score: (call: grpc.ServerDuplexStream<ScoreRequest, unknown>) => {
      call.on('data', (r: ScoreRequest) => r.arrow && onPayload(r.arrow));
      call.on('end', () => call.end());
    },
  });
  try {
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', serverCredentials(null), (e, p) => (e ? reject(e) : resolve(p))));
    const client = createWorkerClient(`127.0.0.1:${port}`, channelCredentials(null));
    try {
      const call = client.Score(new grpc.Metadata());
      const ended = new Promise((resolve, reject) => call.on('end', resolve).on('error', reject).on('data', () => {}));
      await send((arrow) => writeFlushed(call, { arrow }));
      call.end();
      await ended;
    } finally {
      client.close();
    }
  } finally {
    await shutdownServer(server);
  }
}
