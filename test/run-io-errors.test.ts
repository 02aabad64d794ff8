/**
 * I/O errors say what failed: a disk that fills up during publish (an injected ENOSPC: a small tmpfs
 * cannot be mounted here) ends the run with the publish exit code and a message naming the stage, the
 * path and the error, not an "internal error", even though saving the run state then fails too.
 */
import path from 'node:path';
import { expect, test } from 'vitest';
import { EXIT_CODES } from '../core/errors.js';
import { ROOT, runCli, taobaoJob } from './helpers/cli.js';

const INJECT = path.join(ROOT, 'test/helpers/inject-enospc.mjs');

test('disk full during publish: exit 7 naming the stage, the file and ENOSPC; the failing state save does not mask it', async () => {
  const { conf } = await taobaoJob({
    products: { overall: true, topCategories: 0 },
    model: { architectures: ['lstm'], epochs: 1, embeddingDim: 4, hiddenUnits: 4, denseUnits: 4, batchSize: 256 },
    shards: { count: 2 },
    cluster: { workers: 1 },
  });
  const args = ['run', '--account', 'taobao', '--date', '2017-12-02', '--conf', conf];
  const full = await runCli(args, { env: { NODE_OPTIONS: `--import ${INJECT}`, NEXTBUY_TEST_ENOSPC_FROM: '/predictions/' } });
  expect(full.stderr).not.toMatch(/internal error|Please report/);
  expect(full.stderr).toMatch(/nextbuy: publish: open \S*\/predictions\/account=taobao\/date=2017-12-02\/\S+ failed: no space left on device \(ENOSPC\)/);
  // The state save after the failure hit the full disk too, and said so without taking the first error's place.
  expect(full.stderr).toMatch(/run\.cleanup_failed.*save run state.*ENOSPC/);
  expect(full.code).toBe(EXIT_CODES.PUBLISH);

  // Space again: the same command finishes the night.
  const again = await runCli(args);
  expect(again.code).toBe(0);
}, 300_000);
