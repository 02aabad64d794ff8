/**
 * nextbuy as a library: the README's example type-checks against the declarations `npm run build` emits,
 * imported as `'nextbuy'` through package.json's exports, and the entry points run from the source.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';
import { publishPredictions } from '../coordinator/publish/index.js';
import { JobFileError, PIPELINE, compileJob, readPredictions } from '../index.js';
import { publishOptions, sampleNight, withTempDir } from './helpers/publish.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

/** The ```ts block of README's "Use as a library" section. */
async function readmeExample(): Promise<string> {
  const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.split('\n## Use as a library\n')[1]?.split('\n## ')[0] ?? '';
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  if (!code) throw new Error('README.md has no ```ts example under "## Use as a library"');
  return code;
}

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

describe('nextbuy as a library', () => {
  test("the README's example type-checks against the built declarations, imported as 'nextbuy'", async () => {
    // A copy of the package (its package.json, declarations built as `npm run build` builds them) inside the
    // repository, so that node_modules resolves as for a user, and 'nextbuy' resolves through "exports".
    await mkdir(path.join(ROOT, 'out'), { recursive: true });
    const pkg = await mkdtemp(path.join(ROOT, 'out', 'library-test-'));
    dirs.push(pkg);
    await cp(path.join(ROOT, 'package.json'), path.join(pkg, 'package.json'));
    await cp(path.join(ROOT, 'schema'), path.join(pkg, 'schema'), { recursive: true });
    await run(process.execPath, [TSC, '-p', path.join(ROOT, 'tsconfig.build.json'), '--emitDeclarationOnly', '--sourceMap', 'false', '--outDir', path.join(pkg, 'dist')], { cwd: ROOT });

    const misuse = [
      "import { runDate as runDate2, readPredictions as read2, type RunSummary, type PredictionRow, type JobFile } from 'nextbuy';",
      "import jobSchema from 'nextbuy/job.schema.json' with { type: 'json' };",
      'const title: string = jobSchema.title;',
      "const written: JobFile = { account: 'a', input: { path: 'e.csv' }, columns: { customer: 'c', time: 't', eventType: 'k' }, events: { types: ['buy'], purchase: 'buy' }, label: { horizonDays: 7 } };",
      '// @ts-expect-error a date is a string',
      "void runDate2({ job: 'job.yaml', date: 20171202 });",
      '// @ts-expect-error no such env',
      "void runDate2({ job: 'job.yaml', date: '2017-12-02', env: 'docker' });",
      '// @ts-expect-error a field the job file does not have',
      "const wrong: JobFile = { ...written, modle: {} };",
      "const summary: Promise<RunSummary> = runDate2({ job: 'job.yaml', date: '2017-12-02' });",
      "const rows: Promise<PredictionRow[]> = read2({ job: 'job.yaml', date: '2017-12-02' }).then((p) => p.flatMap((x) => x.rows));",
      'export { title, summary, rows, wrong };',
    ].join('\n');
    await writeFile(path.join(pkg, 'example.ts'), `${await readmeExample()}\nexport {};\n`);
    await writeFile(path.join(pkg, 'misuse.ts'), `${misuse}\n`);
    await writeFile(
      path.join(pkg, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'], skipLibCheck: true, resolveJsonModule: true },
        files: ['example.ts', 'misuse.ts'],
      }),
    );
    const checked = await run(process.execPath, [TSC, '-p', path.join(pkg, 'tsconfig.json')], { cwd: pkg }).catch((e: { stdout: string }) => e);
    expect(checked.stdout).toBe('');
  }, 180_000);

  test("readPredictions reads a night's committed partitions, verified, in rank order", async () => {
    await withTempDir(async (dir) => {
      const job = compileJob(
        {
          account: 'shop-1',
          input: { path: 'events.csv' },
          columns: { customer: 'c', time: 't', eventType: 'k' },
          events: { types: ['buy'], purchase: 'buy' },
          label: { horizonDays: 7 },
          output: { dir: 'out' },
        },
        path.join(dir, 'job.yaml'),
      );
      await publishPredictions(publishOptions(job.output.dir, sampleNight({ customers: 30, products: ['any', 'k1'], seed: 7 })));
      const all = await readPredictions({ job, date: '2017-12-02' });
      expect(all.map((p) => p.product)).toEqual(['any', 'k1']);
      expect(all[0]!.rows).toHaveLength(30);
      expect(all[0]!.rows.map((r) => r.rank)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      expect(all[0]!.manifest.rowCount).toBe(30);
      const one = await readPredictions({ job, date: '2017-12-02', product: 'k1' });
      expect(one.map((p) => p.product)).toEqual(['k1']);
      expect(await readPredictions({ job, date: '2017-12-01' })).toEqual([]);
    });
  });

  test('the entry points take a job file path and refuse a bad one as the command does', async () => {
    expect(PIPELINE).toEqual(['preprocess', 'train', 'score', 'evaluate', 'publish']);
    await expect(readPredictions({ job: path.join(ROOT, 'nonexistent.yaml'), date: '2017-12-02' })).rejects.toThrow(JobFileError);
  });
});
