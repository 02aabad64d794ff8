/** The one retry backoff used everywhere in nextbuy (shard re-leases, reconnects, API polling). */
export const INITIAL_DELAY_MS = 500;
export const MULTIPLIER = 1.6;
export const MAX_DELAY_MS = 30_000;
export const JITTER = 0.2;

export interface BackoffOptions {
  /** @default INITIAL_DELAY_MS */
  initialDelayMs?: number;
  /** @default MULTIPLIER */
  multiplier?: number;
  /** @default MAX_DELAY_MS */
  maxDelayMs?: number;
  /** Share of the delay randomised either way. @default JITTER */
  jitter?: number;
  /** Source of randomness in [0, 1); tests pass a seeded one. @default Math.random */
  random?: () => number;
}

/** Delays grow by `multiplier` from `initialDelayMs` up to `maxDelayMs`, each jittered by ±`jitter`. */
export class Backoff {
  private nextBaseMs: number;
  private readonly o: Required<BackoffOptions>;

  constructor(options: BackoffOptions = {}) {
    this.o = {
      initialDelayMs: options.initialDelayMs ?? INITIAL_DELAY_MS,
      multiplier: options.multiplier ?? MULTIPLIER,
      maxDelayMs: options.maxDelayMs ?? MAX_DELAY_MS,
      jitter: options.jitter ?? JITTER,
      random: options.random ?? Math.random,
    };
    this.nextBaseMs = this.o.initialDelayMs;
  }

  /** The delay to wait before the next attempt; each call grows the following one. */
  nextDelayMs(): number {
    const base = this.nextBaseMs;
    this.nextBaseMs = Math.min(base * this.o.multiplier, this.o.maxDelayMs);
    const spread = base * this.o.jitter * (this.o.random() * 2 - 1);
    return Math.max(0, Math.round(base + spread));
  }

  reset(): void {
    this.nextBaseMs = this.o.initialDelayMs;
  }

  /** Resolves after the next delay, or early (rejecting) if `signal` aborts. */
  wait(signal?: AbortSignal): Promise<void> {
    const ms = this.nextDelayMs();
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const t = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(t);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
