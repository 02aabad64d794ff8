/**
 * Flow-controlled reading and writing of gRPC streams, used on both ends.
 *
 * Reading pauses the stream while `highWater` messages wait, so gRPC stops asking the peer for
 * more (HTTP/2 flow control carries the pause back to the sender). Unlike `for await`, it never
 * destroys the stream on an early exit, so a server can still send a status afterwards.
 */
import type { Readable, Writable } from 'node:stream';

export class StreamReader<T> {
  private readonly waiting: T[] = [];
  private ended = false;
  private error: unknown = null;
  private wake: (() => void) | null = null;

  constructor(
    private readonly stream: Readable,
    private readonly highWater = 2,
  ) {
    stream.on('data', (m: T) => {
      this.waiting.push(m);
      if (this.waiting.length >= this.highWater) stream.pause();
      this.notify();
    });
    stream.on('end', () => {
      this.ended = true;
      this.notify();
    });
    stream.on('error', (e) => {
      this.error ??= e;
      this.notify();
    });
    stream.on('close', () => {
      this.ended = true;
      this.notify();
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** The next message, or undefined once the peer half-closed. Rejects with the stream's error. */
  async next(): Promise<T | undefined> {
    for (;;) {
      if (this.waiting.length > 0) {
        const m = this.waiting.shift()!;
        if (this.waiting.length < this.highWater && this.stream.isPaused()) this.stream.resume();
        return m;
      }
      if (this.error) throw this.error;
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

/** Writes one message and waits until it has left this process's buffers (handed to HTTP/2): at most one message is held here. */
export function writeFlushed<T>(stream: Writable, message: T): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(message, (err?: Error | null) => (err ? reject(err) : resolve()));
  });
}

/**
 * Writes one message and waits while the stream's buffer is full (the peer reads slower than we send).
 * `onFlushed` runs once the message has left this process's buffers, never if the write fails: the
 * moment a buffer the message was sent from may be reused.
 */
export function writeMessage<T>(stream: Writable, message: T, onFlushed?: () => void): Promise<void> {
  const flushed = onFlushed && ((err?: Error | null) => err || onFlushed());
  if (stream.write(message, flushed)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (err?: unknown) => {
      stream.off('drain', onDrain);
      stream.off('error', onError);
      stream.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onError = (e: unknown) => done(e);
    const onClose = () => done(new Error('stream closed while waiting to write'));
    stream.on('drain', onDrain);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}
