/**
 * SIGTERM (Kubernetes deleting the pod, a CronJob's deadline) and SIGINT (Ctrl-C) stop a run gracefully:
 * the first one aborts the returned signal, which the pipeline takes as "lease nothing more, let in-flight
 * work finish, save state, stop the workers" (RunOptions.stop); the command then exits 143. A second
 * signal exits at once.
 */
import { StoppedError, EXIT_CODES } from '../core/errors.js';
import type { Logger } from '../core/log.js';

export interface StopHandlers {
  signal: AbortSignal;
  /** Removes the handlers (the process's default behaviour comes back). */
  dispose(): void;
}

export function onStopSignals(logger: Logger): StopHandlers {
  const controller = new AbortController();
  const handler = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      logger.error('run.stop_forced', { signal: sig });
      process.exit(EXIT_CODES.STOPPED);
    }
    logger.warn('run.stop_requested', { signal: sig, then: 'no new shards are leased; in-flight work finishes; state is saved; workers are stopped' });
    controller.abort(new StoppedError(`stopped by ${sig}: finished work is saved; run the same command again to resume`));
  };
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];
  for (const s of signals) process.on(s, handler);
  return {
    signal: controller.signal,
    dispose: () => {
      for (const s of signals) process.off(s, handler);
    },
  };
}
