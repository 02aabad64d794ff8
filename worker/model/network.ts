/**
 * The two architectures' forward passes over tf.Variables laid out as in spec.ts.
 *
 *   lstm:       embeddings ⊕ features → LSTM → last hidden state → dense(relu) → dense → logit
 *   attention:  embeddings ⊕ features → LSTM → hidden states H; for each product p with query q_p:
 *               α = softmax(H·q_p / √units); pooled = αᵀH; [pooled, pooled ⊙ q_p, q_p] → dense(relu) → dense → logit
 *
 * The LSTM's input projection x·W + b runs for all steps as one matrix product before the recurrence.
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
      const v = tf.variable(tf.tensor(initial.subarray(w.offset, w.offset + w.size), w.shape, 'float32'), true, `${w.name}_${uid++}`);
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

  /** Same as preactivationsFromEmbedded(embed(inputs)), but embeds time-major directly (transposing ids, not vectors). */
  preactivations(inputs: NetworkInputs): tf.Tensor3D {
    const parts: tf.Tensor3D[] = embeddedColumns(this.spec).map(
      (c) => tf.gather(this.weight(`embedding/${c}`), tf.transpose(inputs.tokens[c]!)) as tf.Tensor3D,
    );
    if (this.spec.featureNames.length > 0) parts.push(tf.transpose(inputs.features, [1, 0, 2]));
    return this.project(parts.length === 1 ? parts[0]! : tf.concat(parts, 2));
  }

  private project(timeMajor: tf.Tensor3D): tf.Tensor3D {
    const [steps, batch, width] = timeMajor.shape;
    const xp = tf.add(tf.matMul(tf.reshape(timeMajor, [steps * batch, width]), this.weight('lstm/kernel')), this.weight('lstm/bias'));
    return tf.reshape(xp, [steps, batch, 4 * this.spec.hiddenUnits]);
  }

  /**
   * Logits from pre-activations.
   * @param productIds attention only: indices into spec.products to score (default all)
   */
  head(preactivations: tf.Tensor3D, productIds?: Int32Array): ForwardResult {
    const hs = lstmRecurrence(preactivations, this.weight('lstm/recurrent_kernel') as tf.Tensor as tf.Tensor2D);
    const [steps, batch, units] = hs.shape;
    const dense = (x: tf.Tensor2D) => {
      const hidden = tf.relu(tf.add(tf.matMul(x, this.weight('dense/kernel')), this.weight('dense/bias'))) as tf.Tensor2D;
      return tf.add(tf.matMul(hidden, this.weight('output/kernel')), this.weight('output/bias')) as tf.Tensor2D;
    };
    if (this.spec.architecture === 'lstm') {
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
    const query = tf.broadcastTo(q, [batch, products, units]) as tf.Tensor3D;
    const joined = tf.concat([pooled, tf.mul(pooled, query), query], 2);
    const logits = tf.reshape(dense(tf.reshape(joined, [batch * products, 3 * units])), [batch, products]) as tf.Tensor2D;
    return { logits, attention };
  }

  forward(inputs: NetworkInputs, productIds?: Int32Array): ForwardResult {
    return this.head(this.preactivations(inputs), productIds);
  }

  dispose(): void {
    for (const v of this.variables) v.dispose();
  }
}

let uid = 0;
