/**
 * Runs preprocess on a small input file (smallJob's columns) in its own process and prints the result as JSON, so a test can run it
 * under another environment (e.g. TZ). Usage: node --import tsx preprocess-child.ts <events file> <runDir> <scoreDate>
 */
import { preprocess } from '../../coordinator/preprocess/index.js';
import { smallJob } from './preprocess.js';

const [file, runDir, scoreDate] = process.argv.slice(2);
const result = await preprocess({ job: smallJob(file!), scoreDate: scoreDate!, runDir: runDir! });
process.stdout.write(JSON.stringify({ ...result, zone: Intl.DateTimeFormat().resolvedOptions().timeZone }));
