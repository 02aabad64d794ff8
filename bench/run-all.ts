/**
 * `npm run bench`: every benchmark in turn, each in its own process, at the sizes its issue names
 * (pass `--quick` for small sizes that finish in a few minutes). Prints each one's figures as it goes.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineLine } from './machine.js';

const quick = process.argv.includes('--quick');
const here = path.dirname(fileURLToPath(import.meta.url));
const BENCHES: { file: string; args: string[]; quickArgs: string[] }[] = [
  { file: 'preprocess.ts', args: ['10M', '100M'], quickArgs: ['1M'] },
  { file: 'transport.ts', args: [], quickArgs: ['--shards', '8', '--repeat', '3', '--warmup-passes', '3'] },
  { file: 'models.ts', args: [], quickArgs: ['--seconds', '1'] },
  { file: 'training.ts', args: ['--customers', '24000', '--workers', '1,2,4'], quickArgs: ['--customers', '4000', '--workers', '1,2'] },
  { file: 'nightly-scoring.ts', args: ['--customers', '1000000'], quickArgs: ['--customers', '50000'] },
  { file: 'publish.ts', args: [], quickArgs: ['--customers', '100000'] },
  { file: 'quality.ts', args: ['--customers', '20000,100000'], quickArgs: ['--customers', '5000'] },
];

console.log(`nextbuy benchmarks${quick ? ' (quick sizes)' : ''} · ${machineLine()}\n`);
let failed = 0;
for (const b of BENCHES) {
  console.log(`── ${b.file} ${(quick ? b.quickArgs : b.args).join(' ')}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, b.file), ...(quick ? b.quickArgs : b.args)], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.log(`!! ${b.file} exited with ${r.status ?? r.signal}`);
  }
  console.log('');
}
process.exitCode = failed > 0 ? 1 : 0;
