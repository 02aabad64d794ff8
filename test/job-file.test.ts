import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { JobFileError } from '../core/errors.js';
import { compileJob, loadJob } from '../jobs/job-file.js';
import { jobFileErrorOf } from './helpers/job-file.js';

const minimal = {
  account: 'shop-1',
  input: { path: 'events/*.parquet' },
  columns: { customer: 'cid', time: 'ts', eventType: 'kind', category: 'cat' },
  events: { types: ['view', 'buy'], purchase: 'buy' },
  label: { horizonDays: 7 },
};

const errorOf = jobFileErrorOf;

describe('job file', () => {
  test('the bundled Taobao job loads with its data beside it', async () => {
    const job = await loadJob('examples/taobao/job.yaml');
    expect(job.account).toBe('taobao');
    expect(job.input.path).toBe(path.resolve('examples/taobao/events.csv.gz'));
    expect(job.input.format).toBe('csv');
    expect(job.validation.validFromMs).toBe(Date.UTC(2017, 10, 24, 16));
    expect(job.products).toEqual({ overall: true, topCategories: 3, categories: [] });
    expect(job.cluster.heartbeatTimeoutMs).toBe(30_000);
    expect(job.actions.map((a) => a.name)).toEqual(['in_store', 'sms']);
  });

  test('defaults fill every optional field and paths resolve against the job file', () => {
    const job = compileJob(minimal, '/jobs/shop.yaml');
    expect(job.input).toEqual({ path: '/jobs/events/*.parquet', format: 'parquet', timeFormat: 'auto', timeZone: 'UTC' });
    expect(job.sequence).toEqual({ lookbackDays: 30, maxLength: 50 });
    expect(job.model.architectures).toEqual(['logistic', 'lstm', 'attention']);
    expect(job.model.classWeight).toBe('balanced');
    expect(job.output.dir).toBe('/jobs/out');
    expect(job.columns.item).toBeNull();
    expect(job.actions[0]).toEqual({ name: 'in_store', minScore: 0.4 });
  });

  test('actions are sorted highest threshold first', () => {
    const job = compileJob({ ...minimal, actions: [{ name: 'sms', minScore: 0.2 }, { name: 'call', minScore: 0.7 }] }, '/j.yaml');
    expect(job.actions.map((a) => a.name)).toEqual(['call', 'sms']);
  });

  test.each([
    [{ ...minimal, label: { horizonDays: 'two' } }, 'label.horizonDays', 'must be a whole number of days ≥ 1, got "two"'],
    [{ ...minimal, label: { horizonDays: 0 } }, 'label.horizonDays', 'must be ≥ 1, got 0'],
    [{ ...minimal, account: '../other' }, 'account', 'lowercase letters'],
    [{ ...minimal, events: { types: ['view'], purchase: 'buy' } }, 'events.purchase', 'must be one of events.types'],
    [{ ...minimal, columns: { ...minimal.columns, customer: undefined } }, 'columns.customer', 'is required'],
    [{ ...minimal, columns: { ...minimal.columns, time: 'ts\u0000' } }, 'columns.time', 'a column name of the input or an expression'],
    [{ ...minimal, input: { path: 's3://bucket/events/' , format: 'parquet' } }, 'input.path', 'is a s3:// URL'],
    [{ ...minimal, output: { dir: 's3://bucket/x' } }, 'output.dir', 'is a s3:// URL'],
    [{ ...minimal, output: { dir: 'gs://bucket/x' } }, 'output.dir', 'is a gs:// URL'],
    [{ ...minimal, input: { path: 'http://example.com/e.csv' } }, 'input.path', 'is a http:// URL'],
    [{ ...minimal, input: { ...minimal.input, timeZone: 'Mars/Olympus' } }, 'input.timeZone', 'IANA time zone'],
    [{ ...minimal, validation: { maxStaleness: 'a while' } }, 'validation.maxStaleness', "a duration like '2d'"],
    [{ ...minimal, model: { architectures: ['gru'] } }, 'model.architectures[0]', "must be one of 'logistic', 'lstm', 'attention'"],
    [{ ...minimal, modle: {} }, 'modle', 'is not a known field'],
    [{ ...minimal, cluster: { heartbeatTimeout: 'soon' } }, 'cluster.heartbeatTimeout', "a duration like '30s'"],
    [{ ...minimal, validation: { validFrom: '2017-02-30' } }, 'validation.validFrom', 'not a real calendar date'],
    [{ ...minimal, validation: { validTo: '2017-12-04T25:00' } }, 'validation.validTo', 'an instant like 2017-11-25T00:00:00+08:00'],
    [{ ...minimal, input: { path: 'events.json' } }, 'input.format', 'cannot be inferred'],
    [{ ...minimal, actions: [{ name: 'none', minScore: 0.1 }] }, 'actions', 'may not name an action "none"'],
    [{ ...minimal, columns: { customer: 'c', time: 't', eventType: 'k' }, products: { topCategories: 2 } }, 'products', 'columns.category is not set'],
  ])('rejects a bad field with an error naming it (%#)', (raw, field, message) => {
    const e = errorOf(raw);
    expect(e.field).toBe(field);
    expect(e.message).toContain(`/jobs/shop.yaml: ${field} `);
    expect(e.message).toContain(message);
    expect(e.exitCode).toBe(3);
  });

  test('invalid YAML names the line', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-job-'));
    const file = path.join(dir, 'bad.yaml');
    await writeFile(file, 'account: a\ninput: [unclosed\n');
    await expect(loadJob(file)).rejects.toThrow(/bad\.yaml: \(line \d+, column \d+\) is not valid YAML/);
  });

  test('a missing job file says to pass one with --conf', async () => {
    await expect(loadJob('/nonexistent/job.yaml')).rejects.toThrow(/job\.yaml: \(file\) cannot be read: ENOENT\. Pass an existing job file with --conf/);
  });
});
