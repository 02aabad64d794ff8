/**
 * The `static` backend: workers already running at known addresses (`cluster.addresses`). It starts
 * nothing; it registers each address on the worker's behalf, and the pool's handshake still checks that
 * the worker holds the token before anything derived from it is sent (start them with the same
 * NEXTBUY_TOKEN as the coordinator, and NEXTBUY_ADVERTISE_HOST set to the host in cluster.addresses,
 * so that a worker answers Hello only for its own address). A static worker serves one run and
 * account at a time: another run's coordinator is refused until the run holding it drains it (the
 * worker then exits) or has made no call for 60 s.
 */
import { ClusterError } from '../../core/errors.js';
import { registerWithRetry } from '../../proto/register.js';
import { readTlsFiles } from '../../proto/credentials.js';
import type { ClusterBackend, LaunchContext } from './backend.js';

export interface StaticBackendOptions {
  /** How long to keep trying an address that does not answer yet. @default 60000 */
  registerTimeoutMs?: number;
}

export class StaticBackend implements ClusterBackend {
  readonly kind = 'static' as const;
  private failWith: ((e: ClusterError) => void) | null = null;
  private readonly failed: Promise<never>;
  private readonly abort = new AbortController();

  constructor(
    readonly addresses: string[],
    private readonly options: StaticBackendOptions = {},
  ) {
    if (addresses.length === 0) throw new ClusterError('static backend needs at least one worker address (cluster.addresses)');
    this.failed = new Promise<never>((_, reject) => (this.failWith = reject));
    this.failed.catch(() => {});
  }

  async start(ctx: LaunchContext): Promise<void> {
    const errors: string[] = [];
    const tls = ctx.tls ? readTlsFiles(ctx.tls) : null;
    const attempts = this.addresses.map((address, i) =>
      registerWithRetry({
        coordinatorAddress: ctx.coordinatorAddress,
        address,
        runId: ctx.runId,
        token: ctx.token,
        workerName: `static-${i}`,
        timeoutMs: this.options.registerTimeoutMs ?? 60_000,
        signal: this.abort.signal,
        tls,
      }).catch((e: unknown) => {
        errors.push(`${address}: ${(e as Error).message}`);
      }),
    );
    // Launched means "asked"; failures() reports when none of them could join.
    void Promise.all(attempts).then(() => {
      if (errors.length === this.addresses.length && !this.abort.signal.aborted) {
        this.failWith?.(new ClusterError(`no static worker could join: ${errors.join('; ')}`));
      }
    });
  }

  failures(): Promise<never> {
    return this.failed;
  }

  async stop(): Promise<void> {
    this.abort.abort(new ClusterError('static backend stopped'));
  }
}
