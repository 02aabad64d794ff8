/**
 * Exports a trained model to ONNX (opset 17) so that scoring runs in ONNX Runtime. Built directly as
 * protobuf with onnx-proto; the graph computes exactly what network.ts computes:
 *
 *   Gather(embeddings of transposed ids; one-hot rows for small vocabularies, see lstmInput)
 *     ⊕ transposed features (ONNX's LSTM is time-major) → LSTM → head
 *   lstm head:       Y_h → Gemm → Relu → Gemm → Sigmoid                              → score [batch]
 *   attention head:  Y, Gather(queries, product_ids) → MatMul → Softmax over steps → pooled,
 *                    pooled·(W₁ + diag(q)·W₂) + (q·W₃ + b) [+ Y_h·(W₄ + diag(q)·W₅) with headReadsLastState]
 *                    → Relu → MatMul → Sigmoid                                      → score [batch, products]
 *                    (the per-product kernels and bias are computed here, see productDense)
 *   wide part:       the aggregate features `wide` [batch, 1 or products, W] · wide/kernel, added to the logit
 *                    before the Sigmoid; the logistic architecture is that part alone (Gemm → Sigmoid)
 *
 * Keras stores the LSTM gates as i, f, c, o in column blocks of [input, 4·units]; ONNX wants i, o, f, c in
 * row blocks of [4·units, input], with the recurrent bias separate (zero here: Keras has one bias).
 * The spec travels in the model's metadata (key nextbuy.spec), so a scorer needs nothing but the bytes.
 */
import onnxProto from 'onnx-proto';
import { ModelError } from '../../core/errors.js';
import type { TokenColumn } from '../../proto/shard-batch.js';
import { embeddedColumns, parseSpec, type ModelSpec } from './spec.js';
import { splitWeights } from './weights.js';
import { log as processLog } from '../../core/log.js';

const { onnx } = onnxProto;
type INode = onnxProto.onnx.INodeProto;
type ITensor = onnxProto.onnx.ITensorProto;

export const ONNX_OPSET = 17;
export const ONNX_SPEC_KEY = 'nextbuy.spec';
/** Input names: one int32 [batch, steps] per embedded column, then these. */
export const ONNX_FEATURES_INPUT = 'features';
export const ONNX_PRODUCTS_INPUT = 'product_ids';
/** The aggregate features: [batch, 1, W] (per-product models) or [batch, spec.products, W] (attention). */
export const ONNX_WIDE_INPUT = 'wide';
export const ONNX_OUTPUT = 'score';

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT32 = onnx.TensorProto.DataType.INT32;
const INT64 = onnx.TensorProto.DataType.INT64;

/** Something with a spec and weights: a SequenceModel, or a loaded artifact. */
export interface ExportableModel {
  spec: ModelSpec;
  getWeights(): Float32Array;
}

export function exportOnnx(model: ExportableModel): Uint8Array {
  const spec = parseSpec(model.spec);
  const w = splitWeights(spec, model.getWeights());
  const value = (name: string) => w.get(name)!.values;
  const g = new GraphBuilder();
  const Wn = spec.wideFeatures.length;
  if (Wn > 0) {
    g.input(ONNX_WIDE_INPUT, FLOAT, ['batch', spec.architecture === 'attention' ? spec.products.length : 1, Wn]);
    g.initializer(floatTensor('wide/kernel', value('wide/kernel'), spec.architecture === 'attention' ? [spec.products.length, Wn] : [Wn, 1]));
    if (spec.architecture === 'attention') g.initializer(floatTensor('wide/bias', value('wide/bias'), [spec.products.length]));
  }
  if (spec.architecture === 'logistic') {
    g.initializer(floatTensor('output/bias', value('output/bias'), [1]));
    const x = g.node('Reshape', [ONNX_WIDE_INPUT, g.int64Const('shape/wide', [-1, Wn])]);
    const logit = g.node('Gemm', [x, 'wide/kernel', 'output/bias']);
    g.node('Sigmoid', [g.node('Reshape', [logit, g.int64Const('shape/flat', [-1])])], {}, ONNX_OUTPUT);
    g.output(ONNX_OUTPUT, FLOAT, ['batch']);
    return encodeModel(spec, g);
  }
  const H = spec.hiddenUnits;
  const L = spec.maxLength;
  const columns = embeddedColumns(spec);
  const input = lstmInput(spec, value);

  for (const c of columns) g.input(c, INT32, ['batch', L]);
  if (spec.featureNames.length > 0) g.input(ONNX_FEATURES_INPUT, FLOAT, ['batch', L, spec.featureNames.length]);

  // Time-major from the start (ONNX's LSTM wants [steps, batch, input]): transposing the ids and the few
  // features is cheaper than transposing the embedded sequence.
  const parts = input.columns.map(({ column, table, width }) => {
    g.initializer(floatTensor(`input/${column}`, table, [spec.vocabSizes[column]!, width]));
    return g.node('Gather', [`input/${column}`, g.node('Transpose', [column], { perm: [1, 0] })], { axis: 0 });
  });
  if (spec.featureNames.length > 0) parts.push(g.node('Transpose', [ONNX_FEATURES_INPUT], { perm: [1, 0, 2] }));
  const timeMajor = parts.length === 1 ? parts[0]! : g.node('Concat', parts, { axis: 2 });

  const { W, R, B } = lstmWeights(input.kernel, value('lstm/recurrent_kernel'), value('lstm/bias'), input.width, H);
  g.initializer(floatTensor('lstm/W', W, [1, 4 * H, input.width]));
  g.initializer(floatTensor('lstm/R', R, [1, 4 * H, H]));
  g.initializer(floatTensor('lstm/B', B, [1, 8 * H]));
  const [Y, Yh] = g.nodeMulti('LSTM', [timeMajor, 'lstm/W', 'lstm/R', 'lstm/B'], 2, { hidden_size: H, direction: 'forward' });

  g.initializer(floatTensor('output/kernel', value('output/kernel'), [spec.denseUnits, 1]));
  g.initializer(floatTensor('output/bias', value('output/bias'), [1]));

  if (spec.architecture === 'lstm') {
    g.initializer(floatTensor('dense/kernel', value('dense/kernel'), [H, spec.denseUnits]));
    g.initializer(floatTensor('dense/bias', value('dense/bias'), [spec.denseUnits]));
    const last = g.node('Reshape', [Yh!, g.int64Const('shape/last', [-1, H])]);
    const hidden = g.node('Relu', [g.node('Gemm', [last, 'dense/kernel', 'dense/bias'])]);
    let logit = g.node('Gemm', [hidden, 'output/kernel', 'output/bias']);
    if (Wn > 0) logit = g.node('Add', [logit, g.node('MatMul', [g.node('Reshape', [ONNX_WIDE_INPUT, g.int64Const('shape/wide', [-1, Wn])]), 'wide/kernel'])]);
    g.node('Sigmoid', [g.node('Reshape', [logit, g.int64Const('shape/flat', [-1])])], {}, ONNX_OUTPUT);
    g.output(ONNX_OUTPUT, FLOAT, ['batch']);
  } else {
    g.input(ONNX_PRODUCTS_INPUT, INT32, ['products']);
    const D = spec.denseUnits;
    const perProduct = productDense(spec, value);
    g.initializer(floatTensor('query/embedding', value('query/embedding'), [spec.products.length, H]));
    g.initializer(floatTensor('dense/product_kernel', perProduct.kernels, [spec.products.length, H, D]));
    g.initializer(floatTensor('dense/product_bias', perProduct.biases, [spec.products.length, 1, D]));
    // Scores straight from the time-major states; ONNX Runtime reads the batch-major view of the states
    // for the pooling product without materialising it (its MatMul transpose fusion).
    const timeMajorStates = g.node('Squeeze', [Y!, g.int64Const('axes/directions', [1])]); // [steps, batch, H]
    const states = g.node('Transpose', [timeMajorStates], { perm: [1, 0, 2] }); // [batch, steps, H]
    const q = g.node('Gather', ['query/embedding', ONNX_PRODUCTS_INPUT], { axis: 0 }); // [P, H]
    const scores = g.node('MatMul', [timeMajorStates, g.node('Transpose', [q], { perm: [1, 0] })]); // [steps, batch, P]
    const scaled = g.node('Mul', [scores, g.floatConst('attention/scale', 1 / Math.sqrt(H))]);
    const attention = g.node('Softmax', [g.node('Transpose', [scaled], { perm: [1, 2, 0] })], { axis: -1 }); // [batch, P, steps]
    const pooled = g.node('Transpose', [g.node('MatMul', [attention, states])], { perm: [1, 0, 2] }); // [P, batch, H]
    const kernels = g.node('Gather', ['dense/product_kernel', ONNX_PRODUCTS_INPUT], { axis: 0 }); // [P, H, dense]
    const biases = g.node('Gather', ['dense/product_bias', ONNX_PRODUCTS_INPUT], { axis: 0 }); // [P, 1, dense]
    let preactivation = g.node('Add', [g.node('MatMul', [pooled, kernels]), biases]); // [P, batch, dense]
    if (spec.headReadsLastState) {
      // h·W₄ + (h ⊙ q)·W₅ = h·(W₄ + diag(q)·W₅): one [H, dense] kernel per product, like the pooled states'.
      g.initializer(floatTensor('dense/product_last_kernel', productDense(spec, value, 3).kernels, [spec.products.length, H, D]));
      const last = g.node('Reshape', [Yh!, g.int64Const('shape/last', [-1, H])]); // [batch, H]
      const lastKernels = g.node('Gather', ['dense/product_last_kernel', ONNX_PRODUCTS_INPUT], { axis: 0 }); // [P, H, dense]
      preactivation = g.node('Add', [preactivation, g.node('MatMul', [last, lastKernels])]); // [batch, H]·[P, H, dense] → [P, batch, dense]
    }
    const hidden = g.node('Relu', [preactivation]); // [P, batch, dense]
    const logit = g.node('Add', [g.node('MatMul', [hidden, 'output/kernel']), 'output/bias']); // [P, batch, 1]
    const byProduct = g.node('Reshape', [logit, g.int64Const('shape/scores', [0, -1])]); // [P, batch]
    let logits = g.node('Transpose', [byProduct], { perm: [1, 0] }); // [batch, P]
    if (Wn > 0) {
      const x = g.node('Gather', [ONNX_WIDE_INPUT, ONNX_PRODUCTS_INPUT], { axis: 1 }); // [batch, P, W]
      const k = g.node('Gather', ['wide/kernel', ONNX_PRODUCTS_INPUT], { axis: 0 }); // [P, W]
      const b = g.node('Gather', ['wide/bias', ONNX_PRODUCTS_INPUT], { axis: 0 }); // [P]
      logits = g.node('Add', [g.node('Add', [logits, g.node('ReduceSum', [g.node('Mul', [x, k]), g.int64Const('axes/wide', [2])], { keepdims: 0 })]), b]);
    }
    g.node('Sigmoid', [logits], {}, ONNX_OUTPUT);
    g.output(ONNX_OUTPUT, FLOAT, ['batch', 'products']);
  }
  return encodeModel(spec, g);
}

function encodeModel(spec: ModelSpec, g: GraphBuilder): Uint8Array {
  const modelProto = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'nextbuy',
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    graph: g.build(`nextbuy_${spec.architecture}`),
    metadataProps: [{ key: ONNX_SPEC_KEY, value: JSON.stringify(spec) }],
  });
  const bytes = onnx.ModelProto.encode(modelProto).finish(); // a Node Buffer: hand out a plain Uint8Array view
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * exportOnnx, or null with a log line when the model cannot be exported (its artifact then carries no
 * ONNX graph and workers score it with tfjs).
 */
export function tryExportOnnx(model: ExportableModel, log?: (line: string) => void): Uint8Array | null {
  try {
    return exportOnnx(model);
  } catch (e) {
    if (log) log(`nextbuy: the ${model.spec.architecture} model cannot be exported to ONNX (${(e as Error).message}); it will be scored with tfjs`);
    else processLog.warn('model.onnx_export_failed', { architecture: model.spec.architecture, error: e as Error, then: 'scored with tfjs' });
    return null;
  }
}

/** Reads the spec an exported model carries. */
export function specFromOnnx(bytes: Uint8Array): ModelSpec {
  let decoded: onnxProto.onnx.ModelProto;
  try {
    decoded = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new ModelError(`model.onnx is not a valid ONNX model (${(e as Error).message}): re-export the model`, { cause: e });
  }
  const entry = decoded.metadataProps.find((p) => p.key === ONNX_SPEC_KEY);
  if (!entry?.value) throw new ModelError(`model.onnx has no ${ONNX_SPEC_KEY} metadata: it was not exported by nextbuy`);
  return parseSpec(entry.value);
}

interface LstmInput {
  /** Per embedded column, the table its ids gather from and that table's width. */
  columns: { column: TokenColumn; table: Float32Array; width: number }[];
  /** Keras layout [width, 4·units]: rows for each column's table, then for the features. */
  kernel: Float32Array;
  width: number;
}

/**
 * What the LSTM reads at each step. A column with fewer tokens than embedding dimensions is fed one-hot
 * and its kernel rows replaced by its projected table E·W (vocabulary rows): one-hot·(E·W) is the same
 * x·W with a narrower input, and the LSTM's input product costs per input column.
 */
function lstmInput(spec: ModelSpec, value: (name: string) => Float32Array): LstmInput {
  const dim = spec.embeddingDim;
  const G = 4 * spec.hiddenUnits;
  const kernel = value('lstm/kernel');
  const blocks: Float32Array[] = [];
  const columns = embeddedColumns(spec).map((column, k) => {
    const vocab = spec.vocabSizes[column]!;
    const embedding = value(`embedding/${column}`);
    const rows = kernel.subarray(k * dim * G, (k + 1) * dim * G);
    if (vocab >= dim) {
      blocks.push(rows);
      return { column, table: embedding, width: dim };
    }
    blocks.push(matMul(embedding, rows, vocab, dim, G));
    const identity = new Float32Array(vocab * vocab);
    for (let v = 0; v < vocab; v++) identity[v * vocab + v] = 1;
    return { column, table: identity, width: vocab };
  });
  blocks.push(kernel.subarray(embeddedColumns(spec).length * dim * G));
  const width = blocks.reduce((n, b) => n + b.length / G, 0);
  const joined = new Float32Array(width * G);
  blocks.reduce((at, b) => (joined.set(b, at), at + b.length), 0);
  return { columns, kernel: joined, width };
}

/** [m, k] × [k, n], row-major, accumulated in double precision. */
function matMul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  const out = new Float32Array(m * n);
  const acc = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    acc.fill(0);
    for (let p = 0; p < k; p++) {
      const x = a[i * k + p]!;
      for (let j = 0; j < n; j++) acc[j]! += x * b[p * n + j]!;
    }
    out.set(acc, i * n);
  }
  return out;
}

/**
 * The attention head's dense layer per product: dense([pooled, pooled ⊙ q, q]) = pooled·(W₁ + diag(q)·W₂) + (q·W₃ + b),
 * so each product gets one kernel [H, dense] and one bias [1, dense], computed here once instead of per customer.
 * `from` = 3 gives the last state's kernels, h·(W₄ + diag(q)·W₅) (their biases unused).
 */
function productDense(spec: ModelSpec, value: (name: string) => Float32Array, from = 0): { kernels: Float32Array; biases: Float32Array } {
  const H = spec.hiddenUnits;
  const D = spec.denseUnits;
  const P = spec.products.length;
  const queries = value('query/embedding');
  const dense = value('dense/kernel'); // [3H or 5H, dense]: rows for pooled, pooled ⊙ q, q (then h, h ⊙ q)
  const bias = value('dense/bias');
  const kernels = new Float32Array(P * H * D);
  const biases = new Float32Array(P * D);
  for (let p = 0; p < P; p++) {
    for (let j = 0; j < D; j++) {
      let b = bias[j]!;
      for (let h = 0; h < H; h++) {
        const q = queries[p * H + h]!;
        kernels[(p * H + h) * D + j] = dense[((from + 0) * H + h) * D + j]! + q * dense[((from + 1) * H + h) * D + j]!;
        if (from === 0) b += q * dense[(2 * H + h) * D + j]!;
      }
      biases[p * D + j] = b;
    }
  }
  return { kernels, biases };
}

/** Keras [input, 4H] (i, f, c, o columns) → ONNX [4H, input] (i, o, f, c rows); bias → [Wb, Rb = 0]. */
function lstmWeights(kernel: Float32Array, recurrent: Float32Array, bias: Float32Array, input: number, H: number) {
  const KERAS_BLOCK_FOR_ONNX = [0, 3, 1, 2]; // ONNX i, o, f, c ← Keras blocks i=0, o=3, f=1, c=2
  const transposeBlocks = (m: Float32Array, rows: number) => {
    const out = new Float32Array(4 * H * rows);
    KERAS_BLOCK_FOR_ONNX.forEach((kerasBlock, onnxBlock) => {
      for (let u = 0; u < H; u++) {
        for (let r = 0; r < rows; r++) out[(onnxBlock * H + u) * rows + r] = m[r * 4 * H + kerasBlock * H + u]!;
      }
    });
    return out;
  };
  const B = new Float32Array(8 * H);
  KERAS_BLOCK_FOR_ONNX.forEach((kerasBlock, onnxBlock) => B.set(bias.subarray(kerasBlock * H, (kerasBlock + 1) * H), onnxBlock * H));
  return { W: transposeBlocks(kernel, input), R: transposeBlocks(recurrent, H), B };
}

function floatTensor(name: string, values: Float32Array, dims: number[]): ITensor {
  const copy = new Float32Array(values); // aligned, little-endian on every platform Node runs on
  return { name, dataType: FLOAT, dims, rawData: new Uint8Array(copy.buffer) };
}

type AttributeValue = number | number[] | string;

class GraphBuilder {
  private readonly nodes: INode[] = [];
  private readonly initializers: ITensor[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private counter = 0;

  input(name: string, elemType: number, dims: (number | string)[]): void {
    this.inputs.push(valueInfo(name, elemType, dims));
  }

  output(name: string, elemType: number, dims: (number | string)[]): void {
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  initializer(t: ITensor): void {
    this.initializers.push(t);
  }

  int64Const(name: string, values: number[]): string {
    const raw = new BigInt64Array(values.map((v) => BigInt(v)));
    this.initializers.push({ name, dataType: INT64, dims: [values.length], rawData: new Uint8Array(raw.buffer) });
    return name;
  }

  floatConst(name: string, v: number): string {
    this.initializers.push({ name, dataType: FLOAT, dims: [], rawData: new Uint8Array(Float32Array.of(v).buffer) });
    return name;
  }

  node(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}, output?: string): string {
    return this.nodeMulti(opType, inputs, 1, attributes, output)[0]!;
  }

  nodeMulti(opType: string, inputs: string[], outputCount: number, attributes: Record<string, AttributeValue> = {}, output?: string): string[] {
    const id = this.counter++;
    const outputs = Array.from({ length: outputCount }, (_, k) => (k === 0 && output ? output : `${opType.toLowerCase()}_${id}_${k}`));
    this.nodes.push({ name: `${opType}_${id}`, opType, input: inputs, output: outputs, attribute: Object.entries(attributes).map(([n, v]) => attribute(n, v)) });
    return outputs;
  }

  build(name: string): onnxProto.onnx.IGraphProto {
    return { name, node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs };
  }
}

function attribute(name: string, v: AttributeValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  return { name, type: T.INT, i: v };
}

function valueInfo(name: string, elemType: number, dims: (number | string)[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
  };
}
