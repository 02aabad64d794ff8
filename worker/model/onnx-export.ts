/**
 * Exports a trained model to ONNX (opset 17) so that scoring runs in ONNX Runtime. Built directly as
 * protobuf with onnx-proto; the graph computes exactly what network.ts computes:
 *
 *   Gather(embeddings of transposed ids) ⊕ transposed features (ONNX's LSTM is time-major) → LSTM → head
 *   lstm head:       Y_h → Gemm → Relu → Gemm → Sigmoid                              → score [batch]
 *   attention head:  Y, Gather(queries, product_ids) → MatMul → Softmax over steps → pooled,
 *                    pooled·W₁ + (pooled ⊙ q)·W₂ + q·W₃ + b → Relu → MatMul → Sigmoid  → score [batch, products]
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

const { onnx } = onnxProto;
type INode = onnxProto.onnx.INodeProto;
type ITensor = onnxProto.onnx.ITensorProto;

export const ONNX_OPSET = 17;
export const ONNX_SPEC_KEY = 'nextbuy.spec';
/** Input names: one int32 [batch, steps] per embedded column, then these. */
export const ONNX_FEATURES_INPUT = 'features';
export const ONNX_PRODUCTS_INPUT = 'product_ids';
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
  const H = spec.hiddenUnits;
  const L = spec.maxLength;
  const columns = embeddedColumns(spec);
  const inputWidth = columns.length * spec.embeddingDim + spec.featureNames.length;
  const g = new GraphBuilder();

  for (const c of columns) {
    g.input(c, INT32, ['batch', L]);
    g.initializer(floatTensor(`embedding/${c}`, value(`embedding/${c}`), w.get(`embedding/${c}`)!.entry.shape));
  }
  if (spec.featureNames.length > 0) g.input(ONNX_FEATURES_INPUT, FLOAT, ['batch', L, spec.featureNames.length]);

  // Time-major from the start (ONNX's LSTM wants [steps, batch, input]): transposing the ids and the few
  // features is cheaper than transposing the embedded sequence.
  const parts = columns.map((c: TokenColumn) => g.node('Gather', [`embedding/${c}`, g.node('Transpose', [c], { perm: [1, 0] })], { axis: 0 }));
  if (spec.featureNames.length > 0) parts.push(g.node('Transpose', [ONNX_FEATURES_INPUT], { perm: [1, 0, 2] }));
  const timeMajor = parts.length === 1 ? parts[0]! : g.node('Concat', parts, { axis: 2 });

  const { W, R, B } = lstmWeights(value('lstm/kernel'), value('lstm/recurrent_kernel'), value('lstm/bias'), inputWidth, H);
  g.initializer(floatTensor('lstm/W', W, [1, 4 * H, inputWidth]));
  g.initializer(floatTensor('lstm/R', R, [1, 4 * H, H]));
  g.initializer(floatTensor('lstm/B', B, [1, 8 * H]));
  const [Y, Yh] = g.nodeMulti('LSTM', [timeMajor, 'lstm/W', 'lstm/R', 'lstm/B'], 2, { hidden_size: H, direction: 'forward' });

  g.initializer(floatTensor('dense/bias', value('dense/bias'), [spec.denseUnits]));
  g.initializer(floatTensor('output/kernel', value('output/kernel'), [spec.denseUnits, 1]));
  g.initializer(floatTensor('output/bias', value('output/bias'), [1]));

  if (spec.architecture === 'lstm') {
    g.initializer(floatTensor('dense/kernel', value('dense/kernel'), [H, spec.denseUnits]));
    const last = g.node('Reshape', [Yh!, g.int64Const('shape/last', [-1, H])]);
    const hidden = g.node('Relu', [g.node('Gemm', [last, 'dense/kernel', 'dense/bias'])]);
    const logit = g.node('Gemm', [hidden, 'output/kernel', 'output/bias']);
    g.node('Sigmoid', [g.node('Reshape', [logit, g.int64Const('shape/flat', [-1])])], {}, ONNX_OUTPUT);
    g.output(ONNX_OUTPUT, FLOAT, ['batch']);
  } else {
    g.input(ONNX_PRODUCTS_INPUT, INT32, ['products']);
    g.initializer(floatTensor('query/embedding', value('query/embedding'), [spec.products.length, H]));
    const dense = value('dense/kernel'); // [3H, dense]: rows for pooled, pooled ⊙ q, q
    for (let k = 0; k < 3; k++) {
      g.initializer(floatTensor(`dense/kernel/${k}`, dense.subarray(k * H * spec.denseUnits, (k + 1) * H * spec.denseUnits), [H, spec.denseUnits]));
    }
    const states = g.node('Transpose', [g.node('Squeeze', [Y!, g.int64Const('axes/directions', [1])])], { perm: [1, 0, 2] }); // [batch, steps, H]
    const q = g.node('Gather', ['query/embedding', ONNX_PRODUCTS_INPUT], { axis: 0 }); // [P, H]
    const scores = g.node('MatMul', [states, g.node('Transpose', [q], { perm: [1, 0] })]); // [batch, steps, P]
    const scaled = g.node('Mul', [scores, g.floatConst('attention/scale', 1 / Math.sqrt(H))]);
    const attention = g.node('Softmax', [g.node('Transpose', [scaled], { perm: [0, 2, 1] })], { axis: -1 }); // [batch, P, steps]
    const pooled = g.node('MatMul', [attention, states]); // [batch, P, H]
    const product = g.node('Mul', [pooled, q]);
    const sum = g.node('Add', [
      g.node('Add', [g.node('MatMul', [pooled, 'dense/kernel/0']), g.node('MatMul', [product, 'dense/kernel/1'])]),
      g.node('Add', [g.node('MatMul', [q, 'dense/kernel/2']), 'dense/bias']),
    ]);
    const logit = g.node('Add', [g.node('MatMul', [g.node('Relu', [sum]), 'output/kernel']), 'output/bias']); // [batch, P, 1]
    g.node('Sigmoid', [g.node('Reshape', [logit, g.int64Const('shape/scores', [0, -1])])], {}, ONNX_OUTPUT);
    g.output(ONNX_OUTPUT, FLOAT, ['batch', 'products']);
  }

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
export function tryExportOnnx(model: ExportableModel, log: (line: string) => void = (l) => console.error(l)): Uint8Array | null {
  try {
    return exportOnnx(model);
  } catch (e) {
    log(`nextbuy: the ${model.spec.architecture} model cannot be exported to ONNX (${(e as Error).message}); it will be scored with tfjs`);
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
