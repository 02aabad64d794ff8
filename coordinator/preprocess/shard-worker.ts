/**
 * A worker thread of the sequence pass (./shard-pool.ts): one ShardRunner, shards on request.
 * Messages in: { shard } (build it) or null (stop the shard in progress, if any, and close). Out: progress,
 * duplicates, done, error.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ShardRunner } from './shard-task.js';
import { toWireError, type FromShardWorker, type ShardWorkerData } from './shard-pool.js';

const PROGRESS_EVERY_MS = 250;
const port = parentPort!;
const post = (m: FromShardWorker) => port.postMessage(m);
const { plan, duckdb } = workerData as ShardWorkerData;

let runner: ShardRunner | null = null;
try {
  runner = await ShardRunner.open(plan, duckdb);
  post({ type: 'ready' });
} catch (e) {
  post({ type: 'error', error: toWireError(e) });
}

/** The shard being built, if any: a stop waits for it to settle before the database closes. */
let current: Promise<unknown> = Promise.resolve();

port.on('message', (m: { shard: number } | null) => {
  if (m === null || runner === null) {
    // Ending cooperatively, never by Worker.terminate(): a thread torn down while DuckDB still works for it
    // aborts the whole process (the addon throws into a dying environment).
    runner?.stop();
    void current.then(() => runner?.close()).finally(() => port.close());
    return;
  }
  const shard = m.shard;
  let lastPost = 0;
  current = runner
    .run(shard, {
      // A message per chunk would cost more than the chunk: a few per second are enough for a progress bar.
      onProgress: (events) => {
        const now = performance.now();
        if (now - lastPost < PROGRESS_EVERY_MS) return;
        lastPost = now;
        post({ type: 'progress', shard, events });
      },
      onDuplicates: (found) => post({ type: 'duplicates', found }),
    })
    .then(
      (outcome) => post({ type: 'done', outcome }),
      (e: unknown) => post({ type: 'error', error: toWireError(e) }),
    );
});
