/**
 * Account isolation and injection: a run reads only the input its job file names inside the folders it
 * may read (symlinks followed), writes only under its account's prefix, and no job-file field reaches
 * DuckDB except as a quoted literal or identifier. Each attack below is tried for real.
 */
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { stringify } from 'yaml';
import { preprocess } from '../coordinator/preprocess/index.js';
import { audienceDir, partitionDir } from '../coordinator/publish/layout.js';
import { JobFileError, SecurityError } from '../core/errors.js';
import { compileJob, loadJob } from '../jobs/job-file.js';
import { runCli } from './helpers/cli.js';
import { at, withTempDir, writeEvents, type EventRow } from './helpers/preprocess.js';

const JOB_DIR = '/jobs/acme';
const JOB_FILE = `${JOB_DIR}/job.yaml`;

function jobYaml(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    account: 'acme',
    input: { path: 'events.csv' },
    columns: { customer: 'cid', time: 'ts', eventType: 'kind', item: 'item', category: 'cat' },
    events: { types: ['view', 'cart', 'buy'], purchase: 'buy' },
    validation: { maxRejectedShare: 0.5 },
    label: { horizonDays: 1 },
    sequence: { lookbackDays: 3, maxLength: 5 },
    vocabulary: { minCount: 1, maxSize: 1000 },
    products: { overall: true },
    shards: { count: 2, batchRows: 8 },
    resources: { memoryLimit: '256MB', threads: 1 },
    ...overrides,
  };
}

/** The field a job file is refused for, or null when it loads. */
function refusedField(overrides: Record<string, unknown>): string | null {
  try {
    compileJob(jobYaml(overrides), JOB_FILE);
    return null;
  } catch (e) {
    if (e instanceof JobFileError) return e.field;
    throw e;
  }
}

/** Four customers over four days; `kinds` are cycled as event types. */
function rows(kinds: string[], extra: Partial<EventRow> = {}): EventRow[] {
  const out: EventRow[] = [];
  for (let c = 0; c < 4; c++) {
    for (let d = 0; d < 4; d++) out.push({ cid: `c${c}`, ts: at(`2024-05-0${d + 1}`, c + 1), kind: kinds[(c + d) % kinds.length]!, item: `i${d}`, cat: `k${c % 2}`, ...extra });
  }
  return out;
}

async function writeJob(dir: string, overrides: Record<string, unknown> = {}): Promise<string> {
  const file = path.join(dir, 'job.yaml');
  await writeFile(file, stringify(jobYaml(overrides)));
  return file;
}

describe('job-file fields that become paths are validated at load', () => {
  test.each(['../globex', 'acme/../globex', 'a/b', '*', 'acme*', '{acme,globex}', "acme'; DROP TABLE events; --", 'ACME', '', '.hidden', 'a\u0000b'])(
    'account %j is refused, naming the field',
    (account) => {
      expect(refusedField({ account })).toBe('account');
    },
  );

  test.each(['../globex/events.csv', 'data/*/../../../globex/*.csv', '../../jobs/acme-evil/events.csv', '..'])(
    'a relative input.path %j that climbs out of the job folder is refused',
    (p) => {
      expect(refusedField({ input: { path: p, format: 'csv' } })).toBe('input.path');
    },
  );

  test('with security.inputRoots set, an absolute input.path must lie inside one of them', () => {
    const roots = { security: { inputRoots: ['/data/acme', 'incoming'] } };
    expect(refusedField({ input: { path: '/etc/passwd', format: 'csv' }, ...roots })).toBe('input.path');
    expect(refusedField({ input: { path: '/data/acme-old/events.csv' }, ...roots })).toBe('input.path');
    expect(refusedField({ input: { path: '/data/*/events.csv' }, ...roots })).toBe('input.path');
    expect(refusedField({ input: { path: 'events.csv' }, ...roots })).toBe('input.path'); // the job folder is no longer implied
    expect(refusedField({ input: { path: 'incoming/2024/*.csv' }, ...roots })).toBeNull();
  });

  test('an input outside the job folder loads once its folder is listed in security.inputRoots', () => {
    const job = compileJob(jobYaml({ input: { path: '/data/shared/acme/events.csv' }, security: { inputRoots: ['/data/shared/acme'] } }), JOB_FILE);
    expect(job.input.path).toBe('/data/shared/acme/events.csv');
    expect(refusedField({ input: { path: '/data/shared/globex/events.csv' }, security: { inputRoots: ['/data/shared/acme'] } })).toBe('input.path');
  });

  test('an input path with a control character is refused', () => {
    expect(refusedField({ input: { path: 'events\n.csv' } })).toBe('input.path');
  });

  test.each([
    ['columns.customer', { columns: { customer: 'cid" FROM read_csv(\'/etc/passwd\') --', time: 'ts', eventType: 'kind' } }],
    ['columns.time', { columns: { customer: 'cid', time: "ts'; COPY x TO '/tmp/x'", eventType: 'kind' } }],
    ['columns.numeric[0].column', { columns: { customer: 'cid', time: 'ts', eventType: 'kind', numeric: [{ column: 'price"); --' }] } }],
    ['products.categories[0]', { products: { categories: ["k0' OR 1=1 --"] } }],
    ['actions[0].name', { actions: [{ name: '../../etc', minScore: 0.5 }] }],
    ['resources.memoryLimit', { resources: { memoryLimit: "1GB'; INSTALL httpfs; --" } }],
  ])('SQL through %s is refused at load', async (field, overrides) => {
    // Column mappings may be expressions: loadJob checks them with DuckDB's parser (test/job-file-expressions.test.ts).
    const refused = await withTempDir(async (dir) => loadJob(await writeJob(dir, overrides)).then(() => null, (e: unknown) => {
      if (e instanceof JobFileError) return e.field;
      throw e;
    }));
    expect(refused).toBe(field);
  });
});

describe('what reaches DuckDB arrives quoted', () => {
  test('event types full of SQL are matched as literal values, and nothing else runs', async () => {
    await withTempDir(async (dir) => {
      const evil = "buy'); DROP TABLE events; --";
      const view = "vi\"ew' || (SELECT 1) || '";
      await writeEvents(path.join(dir, 'events.csv'), rows([view, 'cart', evil]));
      const job = await loadJob(await writeJob(dir, { events: { types: [view, 'cart', evil], purchase: evil } }));
      const r = await preprocess({ job, scoreDate: '2024-05-03', runDir: path.join(dir, 'run') });
      expect(r.stats.rowsRead).toBe(16);
      expect(r.stats.rejected.unknown_event_type).toBe(0);
      expect(r.stats.rowsAccepted).toBe(16);
      expect(r.train!.positives.any).toBeGreaterThan(0); // the quoted purchase type was recognised
    });
  });

  test('column names with spaces, dots and dashes are quoted identifiers', async () => {
    await withTempDir(async (dir) => {
      const cols = ['customer id', 'ts.utc', 'event-type', 'item', 'cat'];
      const data = rows(['view', 'buy']).map((r) => ({ 'customer id': r.cid, 'ts.utc': r.ts, 'event-type': r.kind, item: r.item, cat: r.cat, cid: '', kind: '', ts: 0 }));
      await writeEvents(path.join(dir, 'events.csv'), data, cols);
      const job = await loadJob(await writeJob(dir, { columns: { customer: 'customer id', time: 'ts.utc', eventType: 'event-type', item: 'item', category: 'cat' } }));
      const r = await preprocess({ job, scoreDate: '2024-05-03', runDir: path.join(dir, 'run') });
      expect(r.stats.rowsAccepted).toBe(16);
    });
  });

  test("a folder named with quotes, spaces and $(…) is read as a path, not as SQL or shell", async () => {
    await withTempDir(async (dir) => {
      const odd = path.join(dir, `it's a "dir" $(touch pwned)`);
      await mkdir(path.join(dir, 'plain'));
      await writeEvents(path.join(dir, 'plain', 'events.csv'), rows(['view', 'buy']));
      await rename(path.join(dir, 'plain'), odd); // (the test helper's own COPY does not quote paths)
      const job = await loadJob(await writeJob(dir, { input: { path: `${path.basename(odd)}/events.csv` } }));
      const r = await preprocess({ job, scoreDate: '2024-05-03', runDir: path.join(dir, 'run') });
      expect(r.stats.rowsRead).toBe(16);
    });
  });
});

describe('symlinks cannot smuggle another account in', () => {
  test('a symlink in the job folder to another account\'s data is refused when the run opens it', async () => {
    await withTempDir(async (dir) => {
      const acme = path.join(dir, 'acme');
      const globex = path.join(dir, 'globex');
      await mkdir(acme);
      await mkdir(globex);
      await writeEvents(path.join(globex, 'events.csv'), rows(['view', 'buy']));
      await symlink(path.join(globex, 'events.csv'), path.join(acme, 'events.csv'));
      const job = await loadJob(await writeJob(acme)); // loads: the path itself is inside
      const run = preprocess({ job, scoreDate: '2024-05-03', runDir: path.join(acme, 'run') });
      await expect(run).rejects.toThrow(SecurityError);
      await expect(run).rejects.toThrow(/resolves to .*globex.*outside the folders/);
    });
  });

  test('a file symlink reached through a glob is refused too', async () => {
    await withTempDir(async (dir) => {
      const acme = path.join(dir, 'acme');
      await mkdir(path.join(acme, 'data'), { recursive: true });
      await mkdir(path.join(dir, 'globex'));
      await writeEvents(path.join(acme, 'data', 'a.csv'), rows(['view', 'buy']));
      await writeEvents(path.join(dir, 'globex', 'b.csv'), rows(['view', 'buy']));
      await symlink(path.join(dir, 'globex', 'b.csv'), path.join(acme, 'data', 'b.csv'));
      const job = await loadJob(await writeJob(acme, { input: { path: 'data/*.csv', format: 'csv' } }));
      await expect(preprocess({ job, scoreDate: '2024-05-03', runDir: path.join(acme, 'run') })).rejects.toThrow(SecurityError);
    });
  });
});

describe('outputs stay under the account prefix', () => {
  test.each([
    ['account', () => partitionDir('/out', '..', '2024-05-03', 'any')],
    ['account', () => audienceDir('/out', 'acme/../globex', '2024-05-03')],
    ['date', () => partitionDir('/out', 'acme', '2024-05-03/../../globex', 'any')],
    ['date', () => partitionDir('/out', 'acme', '2024-02-30', 'any')],
  ])('a hostile %s is refused before a file is touched', (what, build) => {
    expect(build).toThrow(SecurityError);
    expect(build).toThrow(new RegExp(what));
  });

  test.each(['../../../globex', '*', '/etc', '..'])('a product named %j (from the data) gets an encoded folder inside its date', (product) => {
    const dir = partitionDir('/out', 'acme', '2024-05-03', product);
    expect(path.dirname(dir)).toBe('/out/predictions/account=acme/date=2024-05-03');
    expect(path.basename(dir)).not.toMatch(/[/*]|^product=\.+$/);
  });

  test('the CLI refuses an --account that is not the job file\'s', async () => {
    await withTempDir(async (dir) => {
      const conf = await writeJob(dir);
      const r = await runCli(['preprocess', '--account', 'globex', '--date', '2024-05-03', '--conf', conf]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--account globex does not match the job file's account "acme"/);
    });
  });

  test('a hostile --date never reaches a path', async () => {
    await withTempDir(async (dir) => {
      const conf = await writeJob(dir);
      const r = await runCli(['preprocess', '--account', 'acme', '--date', '../../etc', '--conf', conf]);
      expect(r.code).toBe(2);
    });
  });
});

