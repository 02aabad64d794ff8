/**
 * Derived columns: a `columns.*` mapping may be a DuckDB scalar expression over the input's columns
 * (`CASE WHEN Quantity < 0 THEN 'return' ELSE 'purchase' END`, `left(StockCode, 3)`, `'purchase'`).
 *
 * The text is parsed by DuckDB's own parser (`json_serialize_sql`, json extension, statically linked in
 * @duckdb/node-api) and its syntax tree checked against an allowlist: column references, literals,
 * comparisons, AND/OR/NOT, IN, BETWEEN, IS NULL, CASE, casts, and the scalar functions in FUNCTIONS.
 * Subqueries, table functions, `*`, window functions, lambdas, comments, aliases and a second statement are
 * refused, and so is every function not listed (getenv, read_text, …): nothing in a mapping can read a
 * file, the network or the environment. What runs is the SQL DuckDB prints back from the checked tree
 * (`json_deserialize_sql`), not the text as written.
 */
import { openDuckDB, sqlString, type DuckDB } from '../coordinator/duckdb/index.js';
import type { Job } from './job.js';

/** Scalar functions a mapping may call (operators such as + and LIKE are listed under their DuckDB names). */
export const FUNCTIONS: ReadonlySet<string> = new Set([
  // operators
  '+', '-', '*', '/', '//', '%', '^', '**', '||', '~~', '!~~', '~~*', '!~~*', '~~~', '!~~~',
  // text
  'lower', 'upper', 'lcase', 'ucase', 'left', 'right', 'substr', 'substring', 'trim', 'ltrim', 'rtrim', 'replace',
  'concat', 'concat_ws', 'length', 'strlen', 'lpad', 'rpad', 'split_part', 'regexp_replace', 'regexp_extract',
  'regexp_matches', 'regexp_full_match', 'contains', 'starts_with', 'ends_with', 'prefix', 'suffix', 'strip_accents',
  'reverse', 'repeat', 'instr', 'position', 'strpos', 'like_escape', 'ilike_escape', 'format', 'printf',
  // numbers
  'abs', 'round', 'floor', 'ceil', 'ceiling', 'sign', 'greatest', 'least', 'trunc', 'sqrt', 'ln', 'log', 'log10',
  'log2', 'exp', 'pow', 'power', 'mod', 'isnan', 'isfinite', 'isinf',
  // nulls
  'nullif', 'ifnull', 'coalesce',
  // time
  'strptime', 'try_strptime', 'strftime', 'epoch', 'epoch_ms', 'to_timestamp', 'make_timestamp', 'make_date',
  'date_trunc', 'date_part', 'datepart', 'extract', 'timezone', 'date_diff', 'datediff', 'date_add',
  // hashing (deterministic, no state)
  'md5', 'sha256', 'hash',
]);

/** Expression node classes of DuckDB's serialised syntax tree a mapping may contain. */
const CLASSES = new Set(['COLUMN_REF', 'CONSTANT', 'COMPARISON', 'CONJUNCTION', 'OPERATOR', 'CASE', 'CAST', 'BETWEEN', 'FUNCTION']);
const OPERATORS = new Set([
  'OPERATOR_NOT', 'OPERATOR_IS_NULL', 'OPERATOR_IS_NOT_NULL', 'COMPARE_IN', 'COMPARE_NOT_IN', 'OPERATOR_COALESCE',
]);
/** What the refused node classes are called in an error. */
const CLASS_NAMES: Record<string, string> = {
  SUBQUERY: 'a subquery',
  STAR: 'a * or COLUMNS(...)',
  WINDOW: 'a window function',
  LAMBDA: 'a lambda',
  PARAMETER: 'a prepared-statement parameter',
  COLLATE: 'a COLLATE',
  POSITIONAL_REFERENCE: 'a positional reference (#1)',
  DEFAULT: 'DEFAULT',
  LAMBDA_REF: 'a lambda',
};

export type CheckedExpression = { ok: true; sql: string } | { ok: false; refused: string };

/** Plain column names as the job loader took them before expressions (`Customer ID`, `event-type`). */
export const COLUMN_NAME = /^[A-Za-z_][A-Za-z0-9_ .-]{0,127}$/;
const BARE_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Checks one mapping. `sql` is the expression to embed (in parentheses), printed by DuckDB from the
 * checked tree. `refused` names the construct that is not allowed.
 */
export async function checkExpression(db: DuckDB, text: string): Promise<CheckedExpression> {
  const comment = findComment(text);
  if (comment) return { ok: false, refused: `a SQL comment (${comment}): mappings may not hold comments` };
  let json: string;
  try {
    const rows = await db.all<{ j: string }>(`SELECT json_serialize_sql(${sqlString(`SELECT ${text}`)}) AS j`);
    json = rows[0]!.j;
  } catch (e) {
    return { ok: false, refused: `text DuckDB cannot parse (${(e as Error).message.split('\n')[0]})` };
  }
  const tree = JSON.parse(json) as Record<string, unknown>;
  if (tree.error) {
    const message = String(tree.error_message ?? 'not a SELECT');
    return { ok: false, refused: /Only SELECT/.test(message) ? 'a statement other than an expression (after ";"?)' : `text DuckDB cannot parse (${message.split('\n')[0]})` };
  }
  const statements = tree.statements as Record<string, unknown>[];
  if (statements.length !== 1) return { ok: false, refused: `${statements.length} statements (a ";" and a second statement)` };
  const node = statements[0]!.node as Record<string, unknown>;
  if (node.type !== 'SELECT_NODE') return { ok: false, refused: `a ${String(node.type).toLowerCase().replace('_node', '')} (UNION, VALUES …): give one expression` };
  const list = node.select_list as Record<string, unknown>[];
  if (list.length !== 1) return { ok: false, refused: `${list.length} expressions separated by commas: give one` };
  const from = node.from_table as Record<string, unknown>;
  if (from.type !== 'EMPTY') return { ok: false, refused: 'a FROM clause (a table or table function)' };
  const tail = [
    ['a WHERE clause', node.where_clause !== null],
    ['a GROUP BY', (node.group_expressions as unknown[]).length > 0],
    ['a HAVING', node.having !== null],
    ['a QUALIFY', node.qualify !== null],
    ['a SAMPLE', node.sample !== null],
    ['ORDER BY / LIMIT', (node.modifiers as unknown[]).length > 0],
    ['a WITH clause', ((node.cte_map as { map: unknown[] }).map ?? []).length > 0],
  ] as const;
  const clause = tail.find(([, present]) => present);
  if (clause) return { ok: false, refused: clause[0] };
  const expression = list[0]!;
  if (expression.alias) return { ok: false, refused: `an alias ("AS ${String(expression.alias)}")` };
  const bad = refusedNode(expression);
  if (bad) return { ok: false, refused: bad };
  const printed = await db.all<{ s: string }>(`SELECT json_deserialize_sql(${sqlString(json)}) AS s`);
  return { ok: true, sql: `(${printed[0]!.s.replace(/^SELECT /, '')})` };
}

/** The first node of the tree (depth first) that is not allowed, described; null when every node is. */
function refusedNode(node: unknown): string | null {
  if (Array.isArray(node)) {
    for (const child of node) {
      const bad = refusedNode(child);
      if (bad) return bad;
    }
    return null;
  }
  if (node === null || typeof node !== 'object') return null;
  const o = node as Record<string, unknown>;
  if (typeof o.class === 'string') {
    const cls = o.class;
    if (!CLASSES.has(cls)) return CLASS_NAMES[cls] ?? `a ${cls.toLowerCase()} expression`;
    if (cls === 'OPERATOR' && !OPERATORS.has(String(o.type))) return `the operator ${String(o.type).toLowerCase()}`;
    if (cls === 'COLUMN_REF' && (o.column_names as unknown[]).length !== 1) return `a qualified column name (${(o.column_names as string[]).join('.')}): name the input column alone`;
    if (cls === 'FUNCTION') {
      const name = String(o.function_name).toLowerCase();
      if (o.schema || o.catalog) return `a schema-qualified function (${[o.catalog, o.schema, name].filter(Boolean).join('.')})`;
      if (!FUNCTIONS.has(name)) return `the function ${name}() (not on the list of scalar functions a mapping may call; see FUNCTIONS in jobs/column-expression.ts)`;
      if (o.filter !== null || o.distinct || ((o.order_bys as { orders?: unknown[] })?.orders ?? []).length > 0) return `an aggregate form of ${name}()`;
    }
  }
  for (const value of Object.values(o)) {
    const bad = refusedNode(value);
    if (bad) return bad;
  }
  return null;
}

/** `--` or `/*` outside quoted strings and identifiers, or null. */
function findComment(text: string): string | null {
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) {
      if (ch === quote) quote = text[i + 1] === quote ? (i++, quote) : null;
      continue;
    }
    if (ch === "'" || ch === '"') quote = ch;
    else if ((ch === '-' && text[i + 1] === '-') || (ch === '/' && text[i + 1] === '*')) return `"${text.slice(i, i + 2)}"`;
  }
  return null;
}

/** A mapping that is a plain column name (no expression check needed when the input has that column). */
export function isBareIdentifier(text: string): boolean {
  return BARE_IDENTIFIER.test(text);
}

/** Every mapping of a job with the field it came from, e.g. ['columns.numeric[0].column', 'UnitPrice']. */
export function mappedFields(columns: Job['columns']): [field: string, text: string][] {
  const c = columns;
  return [
    ['columns.customer', c.customer],
    ['columns.time', c.time],
    ['columns.eventType', c.eventType],
    ...(c.item !== null ? [['columns.item', c.item] as [string, string]] : []),
    ...(c.category !== null ? [['columns.category', c.category] as [string, string]] : []),
    ...c.numeric.map((n, i): [string, string] => [`columns.numeric[${i}].column`, n.column]),
  ];
}

/**
 * The job loader's check: each mapping is a bare column name, an allowed expression, or a name that can
 * only be a column (`Customer ID`: checked against the input when it is opened). Returns the first
 * problem as [field, message], or null.
 */
export async function checkMappings(columns: Job['columns']): Promise<[string, string] | null> {
  const pending = mappedFields(columns).filter(([, text]) => !isBareIdentifier(text));
  if (pending.length === 0) return null;
  await using db = await openDuckDB({ threads: 1 });
  for (const [field, text] of pending) {
    const checked = await checkExpression(db, text);
    if (checked.ok) continue;
    if (COLUMN_NAME.test(text) && !text.includes('--')) continue;
    return [field, `is neither an input column name nor an expression nextbuy runs: it holds ${checked.refused}. Map a column, or an expression of columns, literals, operators, CASE, casts and listed scalar functions`];
  }
  return null;
}
