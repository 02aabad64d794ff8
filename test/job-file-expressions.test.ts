/**
 * Derived columns: `columns.*` accepts a DuckDB scalar expression, checked at load against an allowlist by
 * DuckDB's own parser. Each refused form below is refused by loadJob with the field and the construct named.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, test } from 'vitest';
import { JobFileError } from '../core/errors.js';
import { openDuckDB } from '../coordinator/duckdb/index.js';
import { checkExpression } from '../jobs/column-expression.js';
import { loadJob } from '../jobs/job-file.js';

const base = {
  account: 'retail',
  input: { path: 'events.csv' },
  columns: { customer: 'CustomerID', time: 'InvoiceDate', eventType: 'kind', item: 'StockCode' },
  events: { types: ['purchase', 'return'], purchase: 'purchase' },
  label: { horizonDays: 7 },
};

async function load(columns: Record<string, unknown>) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nextbuy-expr-'));
  const file = path.join(dir, 'job.yaml');
  await writeFile(file, stringify({ ...base, columns: { ...base.columns, ...columns } }));
  return loadJob(file);
}

async function refusal(columns: Record<string, unknown>): Promise<JobFileError> {
  try {
    await load(columns);
  } catch (e) {
    if (e instanceof JobFileError) return e;
    throw e;
  }
  throw new Error('expected a JobFileError');
}

describe('derived columns', () => {
  test('expressions, constants and plain names load as written', async () => {
    const job = await load({
      eventType: "CASE WHEN Quantity < 0 THEN 'return' ELSE 'purchase' END",
      category: 'left(StockCode, 3)',
      item: '"Stock Code"',
      numeric: [{ column: 'abs(CAST(Quantity AS DOUBLE)) * CAST(UnitPrice AS DOUBLE)', min: 0 }],
      customer: 'Customer ID',
    });
    expect(job.columns.eventType).toBe("CASE WHEN Quantity < 0 THEN 'return' ELSE 'purchase' END");
    expect(job.columns.customer).toBe('Customer ID');
    const constant = await load({ eventType: "'purchase'" });
    expect(constant.columns.eventType).toBe("'purchase'");
  });

  test('what runs is DuckDB\'s own print of the checked tree, in parentheses', async () => {
    await using db = await openDuckDB();
    expect(await checkExpression(db, "CASE WHEN Quantity < 0 THEN 'it''s' END")).toEqual({ ok: true, sql: "(CASE  WHEN ((Quantity < 0)) THEN ('it''s') ELSE NULL END)" });
  });

  test.each([
    ['a subquery', { category: '(SELECT max(x) FROM t)' }, 'columns.category', 'a subquery'],
    ['a subquery inside CASE', { eventType: "CASE WHEN EXISTS (SELECT 1) THEN 'return' END" }, 'columns.eventType', 'a subquery'],
    ['read_csv', { category: "read_csv('/etc/passwd')" }, 'columns.category', 'the function read_csv()'],
    ['read_parquet', { item: "read_parquet('s3://b/x.parquet')" }, 'columns.item', 'the function read_parquet()'],
    ['read_text', { item: "read_text('/etc/hostname')" }, 'columns.item', 'the function read_text()'],
    ['getenv', { customer: "getenv('HOME')" }, 'columns.customer', 'the function getenv()'],
    ['a function not on the list', { category: 'current_setting(\'home_directory\')' }, 'columns.category', 'the function current_setting()'],
    ['a table function in FROM', { category: "StockCode FROM read_csv('x.csv')" }, 'columns.category', 'a FROM clause'],
    ['a second statement', { eventType: "'purchase'; COPY t TO '/tmp/x'" }, 'columns.eventType', 'statement'],
    ['a second SELECT', { eventType: "'purchase'; SELECT 1" }, 'columns.eventType', '2 statements'],
    ['a line comment', { customer: 'CustomerID -- ' }, 'columns.customer', 'a SQL comment ("--")'],
    ['a block comment', { time: 'InvoiceDate /* x */' }, 'columns.time', 'a SQL comment ("/*")'],
    ['a star', { item: 'COLUMNS(*)' }, 'columns.item', 'a * or COLUMNS(...)'],
    ['a window function', { item: 'row_number() OVER ()' }, 'columns.item', 'a window function'],
    ['an aggregate', { item: 'count(*)' }, 'columns.item', 'count_star()'],
    ['a lambda', { item: 'list_transform([1], x -> x)' }, 'columns.item', 'list_transform()'],
    ['a schema-qualified function', { item: 'main.lower(StockCode)' }, 'columns.item', 'schema-qualified'],
    ['two expressions', { item: 'StockCode, Description' }, 'columns.item', '2 expressions'],
    ['numeric features too', { numeric: [{ column: "getenv('X')" }] }, 'columns.numeric[0].column', 'getenv()'],
  ])('refuses %s, naming the field and the construct', async (_, columns, field, construct) => {
    const e = await refusal(columns);
    expect(e.field).toBe(field);
    expect(e.message).toContain(construct);
    expect(e.exitCode).toBe(3);
  });
});
