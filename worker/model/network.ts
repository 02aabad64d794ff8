/**
 * The two architectures' forward passes over tf.Variables laid out as in spec.ts.
 *
 *   logistic:   logit = aggregate features · w + b
 *   lstm:       embeddings ⊕ features → LSTM → last hidden state → dense(relu) → dense → logit (+ aggregates · w)
 *   attention:  embeddings ⊕ features → LSTM → hidden states H; for each product p with query q_p:
 *               α = softmax(H·q_p / √units); pooled = αᵀH; [pooled, pooled ⊙ q_p, q_p (, h_T, h_T ⊙ q_p)]
 *               → dense(relu) → dense → logit (+ aggregates of p · w_p)
 *
 * The wide part (aggregates · w) is a logistic regression on the point-in-time aggregate features added to the
 * sequence model's logit, so the sequence encoder only has to learn what the counts cannot say.
 *
 * The LSTM's input projection x·W + b runs for all steps at once before the recurrence (see preactivations).
 */
import * as tf from '@tensorflow/tfjs';
import type { TokenColumn } from '../../proto/shard-batch.js';
import { lstmRecurrence } from './lstm.js';
import { embeddedColumns, weightLayout, type ModelSpec } from './spec.js';

export interface NetworkInputs {
  /** [batch, steps] int32 per embedded column. */
  tokens: Partial<Record<TokenColumn, tf.Tensor2D>>;
  /** [batch, steps, features] */
  features: tf.Tensor3D;
  /** [batch, 1, W] for a per-product model (its product), [batch, products, W] for attention: the aggregate features. */
  wide: tf.Tensor3D;
}

export interface ForwardResult {
  /** lstm: [batch, 1]; attention: [batch, products]. */
  logits: tf.Tensor2D;
  /** attention only: [batch, products, steps]. */
  attention?: tf.Tensor3D;
}

export class Network {
  readonly spec: ModelSpec;
  /** In weight-layout order. */
  readonly variables: tf.Variable[];
  private readonly byName = new Map<string, tf.Variable>();

  constructor(spec: ModelSpec, initial: Float32Array) {
    this.spec = spec;
    this.variables = weightLayout(spec).map((w) => {
      const value = tf.tensor(initial.subarray(w.offset, w.offset + w.size), w.shape, 'float32');
      const v = tf.variable(value, true, `${w.name}_${uid++}`);
      value.dispose(); // the variable holds its own reference to the data
      this.byName.set(w.name, v);
      return v;
    });
  }

  weight(name: string): tf.Variable {
    const v = this.byName.get(name);
    if (!v) throw new Error(`network has no weight ${name}`);
    return v;
  }

  /** The LSTM's input, [batch, steps, input width]: embeddings in column order, then features. */
  embed(inputs: NetworkInputs): tf.Tensor3D {
    const parts: tf.Tensor3D[] = embeddedColumns(this.spec).map((c) => tf.gather(this.weight(`embedding/${c}`), inputs.tokens[c]!) as tf.Tensor3D);
    if (this.spec.featureNames.length > 0) parts.push(inputs.features);
    return parts.length === 1 ? parts[0]! : tf.concat(parts, 2);
  }

  /** x·W + b for every step, time-major [steps, batch, 4·units], from already embedded input [batch, steps, width]. */
  preactivationsFromEmbedded(x: tf.Tensor3D): tf.Tensor3D {
    return this.project(tf.transpose(x, [1, 0, 2]));
  }

  /**
   * Same numbers as preactivationsFromEmbedded(embed(inputs)), computed column by column and time-major
   * from the start. A column whose vocabulary is smaller than the batch's token count is projected through
   * its table first — gather(E·W) instead of gather(E)·W — which costs vocabulary × dim × 4·units
   * multiplications instead of tokens × dim × 4·units, and whose gradient is a segment sum plus two small
   * products instead of two big ones. The bias rides on the first such table (every row gathers exactly
   * one of its rows), so its gradient is a sum over that table's rows, not over every token.
   */
  preactivations(inputs: NetworkInputs): tf.Tensor3D {
    const { embeddingDim: dim, hiddenUnits: units } = this.spec;
    const gates = 4 * units;
    const [batch, steps] = inputs.features.shape;
    const rows = batch * steps;
    const kernel = this.weight('lstm/kernel');
    const bias = this.weight('lstm/bias');
    const columns = embeddedColumns(this.spec);
    const parts: tf.Tensor2D[] = [];
    let biasAdded = false;
    columns.forEach((c, k) => {
      const ids = tf.reshape(tf.transpose(inputs.tokens[c]!), [rows]) as tf.Tensor1D;
      const table = this.weight(`embedding/${c}`) as tf.Tensor as tf.Tensor2D;
      const w = tf.slice(kernel, [k * dim, 0], [dim, gates]) as tf.Tensor2D;
      if (table.shape[0] <= rows) {
        let projected = tf.matMul(table, w);
        if (!biasAdded) projected = tf.add(projected, bias);
        biasAdded = true;
        parts.push(tf.gather(projected, ids) as tf.Tensor2D);
      } else {
        parts.push(tf.matMul(tf.gather(table, ids) as tf.Tensor2D, w));
      }
    });
    const nf = this.spec.featureNames.length;
    if (nf > 0) {
      const f = tf.reshape(tf.transpose(inputs.features, [1, 0, 2]), [rows, nf]) as tf.Tensor2D;
      parts.push(tf.matMul(f, tf.slice(kernel, [columns.length * dim, 0], [nf, gates]) as tf.Tensor2D));
    }
    let sum = parts.length === 1 ? parts[0]! : (tf.addN(parts) as tf.Tensor2D);
    if (!biasAdded) sum = tf.add(sum, bias);
    return tf.reshape(sum, [steps, batch, gates]);
  }

  private project(timeMajor: tf.Tensor3D): tf.Tensor3D {
    const [steps, batch, width] = timeMajor.shape;
    const xp = tf.add(tf.matMul(tf.reshape(timeMajor, [steps * batch, width]), this.weight('lstm/kernel')), this.weight('lstm/bias'));
    return tf.reshape(xp, [steps, batch, 4 * this.spec.hiddenUnits]);
  }

  /**
   * The wide part's logits: [batch, 1] for a per-product model, [batch, productIds] for attention; null
   * when the model reads no aggregate features.
   */
  wideLogits(wide: tf.Tensor3D, productIds?: Int32Array): tf.Tensor2D | null {
    const W = this.spec.wideFeatures.length;
    if (W === 0) return null;
    const kernel = this.weight('wide/kernel');
    const [batch, products] = wide.shape;
    if (this.spec.architecture !== 'attention') return tf.matMul(tf.reshape(wide, [batch!, W]) as tf.Tensor2D, kernel as tf.Tensor as tf.Tensor2D) as tf.Tensor2D;
    const ids = productIds ?? Int32Array.from(this.spec.products, (_, i) => i);
    const idsT = tf.tensor1d(ids, 'int32');
    const x = ids.length === products ? wide : (tf.gather(wide, idsT, 1) as tf.Tensor3D);
    const k = tf.gather(kernel, idsT) as tf.Tensor2D; // [P, W]
    const b = tf.gather(this.weight('wide/bias'), idsT); // [P]
    return tf.add(tf.sum(tf.mul(x, tf.expandDims(k, 0)), 2), b) as tf.Tensor2D;
  }

  /**
   * Logits from pre-activations (and the aggregate features, when given).
   * @param productIds attention only: indices into spec.products to score (default all)
   */
  head(preactivations: tf.Tensor3D, productIds?: Int32Array, wide?: tf.Tensor3D): ForwardResult {
    const result = this.sequenceHead(preactivations, productIds);
    const fromWide = wide ? this.wideLogits(wide, productIds) : null;
    return fromWide ? { ...result, logits: tf.add(result.logits, fromWide) as tf.Tensor2D } : result;
  }

  private sequenceHead(preactivations: tf.Tensor3D, productIds?: Int32Array): ForwardResult {
    const hs = lstmRecurrence(preactivations, this.weight('lstm/recurrent_kernel') as tf.Tensor as tf.Tensor2D);
    const [steps, batch, units] = hs.shape;
    const dense = (x: tf.Tensor2D) => {
      const hidden = tf.relu(tf.add(tf.matMul(x, this.weight('dense/kernel')), this.weight('dense/bias'))) as tf.Tensor2D;
      return tf.add(tf.matMul(hidden, this.weight('output/kernel')), this.weight('output/bias')) as tf.Tensor2D;
    };
    if (this.spec.architecture !== 'attention') {
      const last = tf.reshape(tf.slice(hs, [steps - 1, 0, 0], [1, batch, units]), [batch, units]) as tf.Tensor2D;
      return { logits: dense(last) };
    }
    const ids = productIds ?? Int32Array.from(this.spec.products, (_, i) => i);
    const products = ids.length;
    const q = tf.gather(this.weight('query/embedding'), tf.tensor1d(ids, 'int32')) as tf.Tensor2D; // [P, units]
    const states = tf.transpose(hs, [1, 0, 2]) as tf.Tensor3D; // [batch, steps, units]
    const scores = tf.reshape(tf.matMul(tf.reshape(states, [batch * steps, units]), q, false, true), [batch, steps, products]);
    const attention = tf.softmax(tf.mul(tf.transpose(scores, [0, 2, 1]), 1 / Math.sqrt(units))) as tf.Tensor3D; // [batch, P, steps]
    const pooled = tf.matMul(attention, states) as tf.Tensor3D; // [batch, P, units]
    // dense([pooled, pooled ⊙ q, q]) computed as pooled·W₁ + (pooled ⊙ q)·W₂ + q·W₃ + b: the same numbers
    // without materialising q for every customer (the ONNX graph does the same).
    const kernel = this.weight('dense/kernel');
    const part = (k: number) => tf.slice(kernel, [k * units, 0], [units, this.spec.denseUnits]) as tf.Tensor2D;
    const rows = batch * products;
    const fromPooled = tf.matMul(tf.reshape(pooled, [rows, units]) as tf.Tensor2D, part(0));
    const fromProduct = tf.matMul(tf.reshape(tf.mul(pooled, q), [rows, units]) as tf.Tensor2D, part(1));
    const fromQuery = tf.add(tf.matMul(q, part(2)), this.weight('dense/bias')); // [P, dense]
    let preactivation = tf.add(tf.reshape(tf.add(fromPooled, fromProduct), [batch, products, this.spec.denseUnits]), fromQuery);
    if (this.spec.headReadsLastState) {
      // + h·W₄ + (h ⊙ q)·W₅: the last hidden state, keyed by the product like the pooled states.
      const last = tf.reshape(tf.slice(hs, [steps - 1, 0, 0], [1, batch, units]), [batch, units]) as tf.Tensor2D;
      const keyed = tf.reshape(tf.mul(tf.expandDims(last, 1), tf.expandDims(q, 0)), [rows, units]) as tf.Tensor2D; // [batch·P, units]
      const fromKeyed = tf.reshape(tf.matMul(keyed, part(4)), [batch, products, this.spec.denseUnits]);
      preactivation = tf.add(preactivation, tf.add(tf.expandDims(tf.matMul(last, part(3)), 1), fromKeyed));
    }
    const hidden = tf.relu(preactivation);
    const out = tf.add(tf.matMul(tf.reshape(hidden, [rows, this.spec.denseUnits]) as tf.Tensor2D, this.weight('output/kernel')), this.weight('output/bias'));
    const logits = tf.reshape(out, [batch, products]) as tf.Tensor2D;
    return { logits, attention };
  }

  forward(inputs: NetworkInputs, productIds?: Int32Array): ForwardResult {
    if (this.spec.architecture === 'logistic') return { logits: tf.add(this.wideLogits(inputs.wide)!, this.weight('output/bias')) as tf.Tensor2D };
    return this.head(this.preactivations(inputs), productIds, inputs.wide);
  }

  dispose(): void {
    for (const v of this.variables) v.dispose();
  }
}

let uid = 0;
