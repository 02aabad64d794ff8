/**
 * A small pool of multi-megabyte buffers for Arrow payloads, used on both ends of the data plane.
 *
 * Why: a payload buffer lives while its batches are read (coordinator) or decoded and scored (worker),
 * long enough for V8 to promote it to the old generation, and a promoted buffer is only freed by a
 * full mark-compact. Allocating one per payload made full collections run several times as often
 * (bench/transport.ts). Pooled buffers stay alive and are reused instead.
 *
 * A buffer that is never given back (an error path, a cancelled call) is simply collected; the pool
 * only ever holds what was given back, up to its limits.
 */

/** Buffers kept for reuse. About as many as payloads are alive at once on one process. */
export const DEFAULT_POOLED_BUFFERS = 8;
/** Bytes kept for reuse in all; a larger buffer given back is dropped. */
export const DEFAULT_POOLED_BYTES = 64 * 1024 * 1024;
/** New buffers are rounded up to this, so payloads of slightly different sizes share buffers. */
const SIZE_STEP = 1024 * 1024;

export interface PayloadBuffersOptions {
  /** @default DEFAULT_POOLED_BUFFERS */
  maxBuffers?: number;
  /** @default DEFAULT_POOLED_BYTES */
  maxBytes?: number;
}

export class PayloadBuffers {
  private readonly free: Buffer[] = [];
  private freeBytes = 0;
  /** Memory this pool allocated: only that is ever taken back (a view of someone else's buffer is ignored). */
  private readonly own = new WeakSet<ArrayBufferLike>();
  private readonly maxBuffers: number;
  private readonly maxBytes: number;
  /** Counters, for tests and benchmarks. */
  readonly stats = { taken: 0, reused: 0 };

  constructor(o: PayloadBuffersOptions = {}) {
    this.maxBuffers = o.maxBuffers ?? DEFAULT_POOLED_BUFFERS;
    this.maxBytes = o.maxBytes ?? DEFAULT_POOLED_BYTES;
  }

  /** A buffer of at least `bytes` bytes (its contents are whatever was there before). */
  take(bytes: number): Buffer {
    this.stats.taken++;
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i]!;
      if (b.length >= bytes && (best < 0 || b.length < this.free[best]!.length)) best = i;
    }
    if (best < 0) {
      const fresh = Buffer.allocUnsafeSlow(Math.max(1, Math.ceil(bytes / SIZE_STEP)) * SIZE_STEP);
      this.own.add(fresh.buffer);
      return fresh;
    }
    this.stats.reused++;
    const [buffer] = this.free.splice(best, 1);
    this.freeBytes -= buffer!.length;
    return buffer!;
  }

  /** `bytes` copied to the start of a pooled buffer (offset 0: 8-byte aligned, as Arrow wants), as a view of their length. */
  copyOf(bytes: Uint8Array): Buffer {
    const buffer = this.take(bytes.byteLength);
    buffer.set(bytes, 0);
    return buffer.subarray(0, bytes.byteLength);
  }

  /** Whether `view` lies in memory this pool allocated. */
  owns(view: Uint8Array): boolean {
    return this.own.has(view.buffer);
  }

  /**
   * Gives back the buffer under `view` (a buffer from take or copyOf, or any view of it). The caller must
   * hold no other view of it afterwards: its bytes will be overwritten by the next payload. Memory the
   * pool did not allocate is ignored.
   */
  give(view: Uint8Array): void {
    const memory = view.buffer;
    if (!this.own.has(memory)) return;
    if (this.free.length >= this.maxBuffers || this.freeBytes + memory.byteLength > this.maxBytes) return;
    if (this.free.some((b) => b.buffer === memory)) return; // given back twice: keep it once
    const whole = Buffer.from(memory, 0, memory.byteLength);
    this.free.push(whole);
    this.freeBytes += whole.length;
  }
}
