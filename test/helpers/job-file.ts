import { JobFileError } from '../../core/errors.js';
import { compileJob } from '../../jobs/job-file.js';

/** The JobFileError that compiling `raw` (as /jobs/shop.yaml) raises; fails the test when it compiles. */
export function jobFileErrorOf(raw: unknown): JobFileError {
  try {
    compileJob(raw, '/jobs/shop.yaml');
  } catch (e) {
    if (e instanceof JobFileError) return e;
    throw e;
  }
  throw new Error('expected a JobFileError');
}
