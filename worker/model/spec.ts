/**
 * The model spec (the type lives with the wire contract in proto/model-spec.ts) and what follows from it:
 * the token columns a model embeds, its input width, and the fixed order and shapes of its weights — the
 * order in which weights travel as one flat Float32Array between workers, the coordinator and artifacts.
 */
import { ModelError } from '../../core/errors.js';
import type { ModelSpec } from '../../proto/model-spec.js';
import { TOKEN_COLUMNS, type TokenColumn } from '../../proto/shard-batch.js';

export type { ModelSpec } from '../../proto/model-spec.js';
export type Architecture = ModelSpec['architecture'];

export interface WeightEntry {
  name: string;
  shape: number[];
  /** Offset of this weight in the flat vector, in floats. */
  offset: number;
  size: number;
}

/** Token columns the model embeds, in the fixed order item, category, event (none for the logistic model). */
export function embeddedColumns(spec: ModelSpec): TokenColumn[] {
  if (spec.architecture === 'logistic') return [];
  return TOKEN_COLUMNS.filter((c) => spec.vocabSizes[c] !== undefined);
}

/** One model per product (logistic, lstm) rather than one for all products (attention). */
export function isPerProduct(spec: ModelSpec): boolean {
  return spec.architecture !== 'attention';
}

/** Width of the LSTM's input at each step: one embedding per token column, then the numeric features. */
export function inputWidth(spec: ModelSpec): number {
  return embeddedColumns(spec).length * spec.embeddingDim + spec.featureNames.length;
}

/**
 * The weights in their fixed order. Layouts follow Keras: embeddings [vocab, dim]; LSTM kernel [input, 4·units],
 * recurrent kernel [units, 4·units], bias [4·units] with gate blocks i, f, c, o; dense kernels [in, out].
 */
export function weightLayout(spec: ModelSpec): WeightEntry[] {
  const h = spec.hiddenUnits;
  const shapes: [string, number[]][] = [];
  const wide = spec.wideFeatures.length;
  // The wide part is linear in the aggregate features: per product for attention, one vector for the others.
  if (spec.architecture === 'logistic') return layoutOf([['wide/kernel', [wide, 1]], ['output/bias', [1]]]);
  for (const c of embeddedColumns(spec)) shapes.push([`embedding/${c}`, [spec.vocabSizes[c]!, spec.embeddingDim]]);
  shapes.push(['lstm/kernel', [inputWidth(spec), 4 * h]], ['lstm/recurrent_kernel', [h, 4 * h]], ['lstm/bias', [4 * h]]);
  if (spec.architecture === 'attention') {
    shapes.push(['query/embedding', [spec.products.length, h]], ['dense/kernel', [(spec.headReadsLastState ? 5 : 3) * h, spec.denseUnits]]);
  } else {
    shapes.push(['dense/kernel', [h, spec.denseUnits]]);
  }
  shapes.push(['dense/bias', [spec.denseUnits]], ['output/kernel', [spec.denseUnits, 1]], ['output/bias', [1]]);
  if (wide > 0 && spec.architecture === 'attention') shapes.push(['wide/kernel', [spec.products.length, wide]], ['wide/bias', [spec.products.length]]);
  else if (wide > 0) shapes.push(['wide/kernel', [wide, 1]]);
  return layoutOf(shapes);
}

function layoutOf(shapes: [string, number[]][]): WeightEntry[] {
  let offset = 0;
  return shapes.map(([name, shape]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const entry = { name, shape, offset, size };
    offset += size;
    return entry;
  });
}

export function weightCount(spec: ModelSpec): number {
  const last = weightLayout(spec).at(-1)!;
  return last.offset + last.size;
}

/** Index of a per-product model's product in the label order. */
export function productIndex(spec: ModelSpec): number {
  const i = spec.product === null ? -1 : spec.products.indexOf(spec.product);
  if (i < 0) throw new ModelError(`model spec: product "${spec.product}" is not one of the products [${spec.products.join(', ')}]`);
  return i;
}

/** Parses and checks a spec (from JSON or an object); every problem names the field and what is allowed. */
export function parseSpec(input: string | ModelSpec): ModelSpec {
  let spec: ModelSpec;
  try {
    spec = typeof input === 'string' ? (JSON.parse(input) as ModelSpec) : input;
  } catch (e) {
    throw new ModelError(`model spec is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  const bad = (field: string, problem: string): never => {
    throw new ModelError(`model spec: ${field} ${problem}`);
  };
  if (spec === null || typeof spec !== 'object') bad('(root)', 'must be an object');
  if (!['logistic', 'lstm', 'attention'].includes(spec.architecture)) bad('architecture', `must be "logistic", "lstm" or "attention", got ${JSON.stringify(spec.architecture)}`);
  if (!Array.isArray(spec.products) || spec.products.length === 0 || spec.products.some((p) => typeof p !== 'string')) {
    bad('products', 'must be a non-empty array of product names');
  }
  if (new Set(spec.products).size !== spec.products.length) bad('products', 'must not repeat a name');
  if (isPerProduct(spec)) productIndex(spec);
  else if (spec.product !== null) bad('product', 'must be null for the attention architecture (it scores every product)');
  const columns = Object.keys(spec.vocabSizes ?? {});
  if (columns.length === 0) bad('vocabSizes', 'must name at least one token column (item, category or event)');
  for (const c of columns) {
    if (!(TOKEN_COLUMNS as readonly string[]).includes(c)) bad(`vocabSizes.${c}`, `is not a token column (${TOKEN_COLUMNS.join(', ')})`);
    const v = spec.vocabSizes[c as TokenColumn]!;
    if (!Number.isInteger(v) || v < 2) bad(`vocabSizes.${c}`, `must be an integer ≥ 2 (it includes the pad and unknown ids), got ${v}`);
  }
  if (!Array.isArray(spec.featureNames)) bad('featureNames', 'must be an array of feature column names');
  spec = { ...spec, wideFeatures: spec.wideFeatures ?? [] };
  if (!Array.isArray(spec.wideFeatures) || spec.wideFeatures.some((n) => typeof n !== 'string')) bad('wideFeatures', 'must be an array of aggregate feature names');
  if (spec.architecture === 'logistic' && spec.wideFeatures.length === 0) bad('wideFeatures', 'must name at least one aggregate feature for the logistic architecture');
  const positive: (keyof ModelSpec)[] = ['maxLength', 'embeddingDim', 'hiddenUnits', 'denseUnits', 'batchSize'];
  for (const k of positive) {
    const v = spec[k] as number;
    if (!Number.isInteger(v) || v < 1) bad(k, `must be a whole number ≥ 1, got ${v}`);
  }
  if (!(spec.learningRate > 0)) bad('learningRate', `must be > 0, got ${spec.learningRate}`);
  if (!(spec.positiveWeight > 0) || !Number.isFinite(spec.positiveWeight)) bad('positiveWeight', `must be a finite number > 0, got ${spec.positiveWeight}`);
  if (!Number.isInteger(spec.seed)) bad('seed', `must be an integer, got ${spec.seed}`);
  for (const k of ['frozenWide', 'headReadsLastState'] as const) {
    if (spec[k] !== undefined && typeof spec[k] !== 'boolean') bad(k, `must be true or false, got ${JSON.stringify(spec[k])}`);
  }
  if (spec.headReadsLastState && spec.architecture !== 'attention') bad('headReadsLastState', 'applies to the attention architecture only');
  return spec;
}

/** A stable key for a spec: equal specs (whatever their key order) give equal keys. */
export function specKey(spec: ModelSpec): string {
  return JSON.stringify(spec, Object.keys(spec).sort().concat(TOKEN_COLUMNS as unknown as string[]));
}

/** Indices into spec.products for the requested names (lstm: its one product; none asked: all of them). */
export function productIdsOf(spec: ModelSpec, products?: string[]): Int32Array {
  if (isPerProduct(spec)) return Int32Array.of(productIndex(spec));
  if (!products || products.length === 0) return Int32Array.from(spec.products, (_, i) => i);
  return Int32Array.from(products, (p) => {
    const i = spec.products.indexOf(p);
    if (i < 0) throw new ModelError(`product "${p}" is not one this model was trained for ([${spec.products.join(', ')}])`);
    return i;
  });
}
