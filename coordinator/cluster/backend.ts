/**
 * How workers come to exist. Every backend starts workers that register themselves with the
 * coordinator's registration server (proto: Coordinator.Register); the scheduler only ever sees
 * registered workers, whichever backend started them.
 */
import type { TlsFiles } from '../../proto/credentials.js';

export interface LaunchContext {
  /** host:port of the coordinator's registration server, as workers must dial it. */
  coordinatorAddress: string;
  runId: string;
  account: string;
  /** The date the run scores (YYYY-MM-DD): workers put it on their log lines. @default none */
  date?: string;
  /** Per-run secret; workers prove they hold it when registering and when the coordinator says Hello. */
  token: string;
  workers: number;
  /** Certificate paths the workers use for mutual TLS (backends hand them over as NEXTBUY_TLS_*). @default none: plaintext */
  tls?: TlsFiles | null;
}

export interface ClusterBackend {
  readonly kind: 'local' | 'static' | 'k8s';
  /** Starts the workers (processes, pods); resolves once they are launched, not once they have registered. */
  start(ctx: LaunchContext): Promise<void>;
  /**
   * Rejects with a ClusterError as soon as the backend knows workers cannot come
   * (image pull errors, no GPU to schedule on, processes exiting at start); never resolves otherwise.
   * The coordinator races it against waiting for registrations.
   */
  failures(): Promise<never>;
  /** Stops and removes every worker this backend started. Safe to call twice. */
  stop(): Promise<void>;
}
