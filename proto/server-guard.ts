/**
 * Bounded before authenticated: what every nextbuy gRPC server (worker, registration) does before it
 * knows who is calling.
 *   - A call of an authenticated method is checked on its metadata by a server interceptor, before
 *     grpc-js reads a byte of its body: a refused call's body is never buffered, and its stream is reset
 *     once its status has gone out.
 *   - Methods served before authentication (the handshake, registration) read messages of at most
 *     preAuthMaxMessageBytes and must finish within preAuthTimeoutMs.
 *   - HTTP/2 streams per connection are capped (SETTINGS_MAX_CONCURRENT_STREAMS), and so are
 *     connections: so in total, at most maxConnections × maxStreamsPerConnection streams are open, and
 *     a connection that has made no authenticated call within unauthenticatedConnectionMs is closed.
 * Two of these reach into grpc-js (the call's HTTP/2 stream, its message decoder), feature-checked as
 * in-place-framing.ts and pooled-receive.ts do: where grpc-js differs, calls are still refused on their
 * metadata before their body is read, and the server-wide message limit applies to pre-auth methods.
 */
import { constants as http2Constants, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import * as grpc from '@grpc/grpc-js';

export interface ServerGuardOptions {
  /** Full method paths served before authentication (e.g. /nextbuy.v1.Worker/Hello). */
  preAuthMethods: readonly string[];
  /**
   * Checks the metadata of a call of any other method, before its body is read: null admits it, else
   * the status it is refused with (say nothing a stranger should learn).
   */
  authenticate(method: string, metadata: grpc.Metadata, call: grpc.ServerInterceptingCallInterface): { code: grpc.status; details: string } | null;
  /** Largest message a pre-auth method reads. @default 16384 */
  preAuthMaxMessageBytes?: number;
  /** A pre-auth call not finished by then ends with DEADLINE_EXCEEDED. @default 10000 */
  preAuthTimeoutMs?: number;
  /** HTTP/2 streams one connection may have open at once. @default 32 */
  maxStreamsPerConnection?: number;
  /** Connections open at once; newer ones beyond are closed at once. @default 64 */
  maxConnections?: number;
  /** A connection without an authenticated call by then is closed; 0: never (a server with no authenticated methods). @default 15000 */
  unauthenticatedConnectionMs?: number;
}

export interface ServerGuard {
  /** Options to create the grpc.Server with (interceptor, stream cap). */
  readonly serverOptions: grpc.ServerOptions;
  /** After bindAsync: applies the connection limits to every connection the server accepts. */
  watchConnections(server: grpc.Server): void;
}

/** How long a refused stream may stay open after its status (for the status to reach the peer first). */
const REFUSED_STREAM_LINGER_MS = 500;

const authenticated = new WeakSet<Http2Session>();

/** The HTTP/2 stream under a grpc-js server call (its BaseServerInterceptingCall's), if this grpc-js has one where expected. */
function streamOf(call: grpc.ServerInterceptingCallInterface): ServerHttp2Stream | null {
  const stream = (call as unknown as { stream?: ServerHttp2Stream }).stream;
  return stream && typeof stream.close === 'function' && typeof stream.once === 'function' ? stream : null;
}

/** Makes the call's message decoder refuse messages over `maxBytes` (before reading any): grpc-js's decoder, or pooled-receive's. */
function limitMessages(call: grpc.ServerInterceptingCallInterface, maxBytes: number): void {
  const internals = call as unknown as { decoder?: { write?: unknown; constructor: new (max: number) => unknown } };
  if (!internals.decoder || typeof internals.decoder.write !== 'function') return;
  internals.decoder = new internals.decoder.constructor(maxBytes) as typeof internals.decoder;
}

function resetSoon(stream: ServerHttp2Stream | null): void {
  if (!stream) return;
  const timer = setTimeout(() => {
    if (!stream.closed && !stream.destroyed) stream.close(http2Constants.NGHTTP2_CANCEL);
  }, REFUSED_STREAM_LINGER_MS);
  timer.unref();
  stream.once('close', () => clearTimeout(timer));
}

export function createServerGuard(o: ServerGuardOptions): ServerGuard {
  const preAuth = new Set(o.preAuthMethods);
  const preAuthMaxBytes = o.preAuthMaxMessageBytes ?? 16 * 1024;
  const preAuthTimeoutMs = o.preAuthTimeoutMs ?? 10_000;
  const maxConnections = o.maxConnections ?? 64;
  const unauthenticatedMs = o.unauthenticatedConnectionMs ?? 15_000;

  const interceptor: grpc.ServerInterceptor = (method, call) => {
    const stream = streamOf(call);
    if (preAuth.has(method.path)) {
      limitMessages(call, preAuthMaxBytes);
      let timer: NodeJS.Timeout | undefined;
      return new grpc.ServerInterceptingCall(call, {
        start: (next) => {
          timer = setTimeout(() => {
            call.sendStatus({ code: grpc.status.DEADLINE_EXCEEDED, details: `not finished within ${preAuthTimeoutMs} ms` });
            resetSoon(stream);
          }, preAuthTimeoutMs);
          timer.unref();
          next({ onCancel: () => clearTimeout(timer) });
        },
        sendStatus: (status, next) => {
          clearTimeout(timer);
          next(status);
        },
      });
    }
    return new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            const refusal = o.authenticate(method.path, metadata, call);
            if (refusal) {
              call.sendStatus(refusal);
              resetSoon(stream);
              return;
            }
            if (stream?.session) authenticated.add(stream.session);
            pass(metadata);
          },
        }),
    });
  };

  return {
    serverOptions: { interceptors: [interceptor], 'grpc.max_concurrent_streams': o.maxStreamsPerConnection ?? 32 },
    watchConnections(server) {
      const internals = server as unknown as { http2Servers?: Map<{ on(event: 'session', f: (s: Http2Session) => void): void }, unknown> };
      if (!(internals.http2Servers instanceof Map)) return;
      const open = new Set<Http2Session>();
      for (const http2Server of internals.http2Servers.keys()) {
        http2Server.on('session', (session) => {
          if (open.size >= maxConnections) {
            session.destroy();
            return;
          }
          open.add(session);
          let timer: NodeJS.Timeout | undefined;
          if (unauthenticatedMs > 0) {
            timer = setTimeout(() => {
              if (!authenticated.has(session) && !session.destroyed) session.destroy();
            }, unauthenticatedMs);
            timer.unref();
          }
          session.once('close', () => {
            clearTimeout(timer);
            open.delete(session);
          });
        });
      }
    },
  };
}
