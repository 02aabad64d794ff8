/**
 * Helpers for the ensemble and evaluation tests: seeded synthetic labels and scores, and brute-force
 * metric computations written independently of coordinator/evaluate (pairs, sorts and loops, no tie groups).
 */
import { DuckDBInstance } from '@duckdb/node-api';
import { seededRandom } from './publish.js';

export { seededRandom };

export function gaussian(random: () => number): () => number {
  return () => {
    const u = Math.max(random(), 1e-12);
    const v = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

export interface SyntheticSet {
  labels: Int8Array;
  /** Informative: a noisy view of the latent propensity. */
  informative: Float32Array;
  /** A second informative model with its own noise. */
  second: Float32Array;
  /** Pure noise, unrelated to the labels. */
  noise: Float32Array;
}

/** Buyers drawn from a latent propensity; `decimals` rounds scores so that ties occur. */
export function syntheticSet(n: number, seed: number, o: { baseLogit?: number; decimals?: number } = {}): SyntheticSet {
  const random = seededRandom(seed);
  const normal = gaussian(random);
  const round = (p: number): number => (o.decimals === undefined ? p : Math.round(p * 10 ** o.decimals) / 10 ** o.decimals);
  const base = o.baseLogit ?? -2;
  const labels = new Int8Array(n);
  const informative = new Float32Array(n);
  const second = new Float32Array(n);
  const noise = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const latent = normal();
    labels[i] = random() < sigmoid(base + 1.5 * latent) ? 1 : 0;
    informative[i] = round(sigmoid(base + 1.5 * (latent + 0.6 * normal())));
    second[i] = round(sigmoid(base + 1.2 * (latent + 0.9 * normal())));
    noise[i] = round(random());
  }
  return { labels, informative, second, noise };
}

/** AUC by comparing every positive with every negative (ties count one half), weighted by w_i·w_j. */
export function pairCountAuc(labels: Int8Array, scores: ArrayLike<number>, weights?: ArrayLike<number>): number {
  let wins = 0;
  let pairs = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < labels.length; j++) {
      if (labels[j] !== 0) continue;
      const w = (weights ? weights[i]! * weights[j]! : 1);
      pairs += w;
      if (scores[i]! > scores[j]!) wins += w;
      else if (scores[i] === scores[j]) wins += 0.5 * w;
    }
  }
  return wins / pairs;
}

export function bruteBrier(labels: Int8Array, scores: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < labels.length; i++) sum += (scores[i]! - labels[i]!) ** 2;
  return sum / labels.length;
}

export function bruteLogLoss(labels: Int8Array, scores: ArrayLike<number>, eps: number): number {
  let sum = 0;
  for (let i = 0; i < labels.length; i++) {
    const p = Math.min(Math.max(scores[i]!, eps), 1 - eps);
    sum += labels[i] === 1 ? -Math.log(p) : -Math.log(1 - p);
  }
  return sum / labels.length;
}

/** Precision among the top `k` rows of a given order, over the base rate. */
export function liftOfTopRows(labels: Int8Array, order: readonly number[], k: number): number {
  let hits = 0;
  for (let r = 0; r < k; r++) hits += labels[order[r]!]!;
  let positives = 0;
  for (const y of labels) positives += y;
  return hits / k / (positives / labels.length);
}

/** Best F1 over every threshold t ∈ scores with "score ≥ t" predicted positive, by direct counting. */
export function bruteBestF1(labels: Int8Array, scores: ArrayLike<number>): { f1: number; threshold: number } {
  const thresholds = [...new Set(Array.from(scores))].sort((a, b) => b - a);
  let best = { f1: -1, threshold: Number.NaN };
  for (const t of thresholds) {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    for (let i = 0; i < labels.length; i++) {
      const predicted = scores[i]! >= t;
      if (predicted && labels[i] === 1) tp++;
      else if (predicted) fp++;
      else if (labels[i] === 1) fn++;
    }
    const f1 = (2 * tp) / (2 * tp + fp + fn);
    if (f1 > best.f1) best = { f1, threshold: t };
  }
  return best;
}

/** Per bin of width 0.1 (score 1 in the last): [count, mean score, share of positives]. */
export function bruteCalibration(labels: Int8Array, scores: ArrayLike<number>): [number, number | null, number | null][] {
  return Array.from({ length: 10 }, (_, b) => {
    const members: number[] = [];
    for (let i = 0; i < labels.length; i++) {
      const bin = scores[i]! === 1 ? 9 : Math.floor(scores[i]! * 10);
      if (bin === b) members.push(i);
    }
    if (members.length === 0) return [0, null, null];
    const mean = members.reduce((s, i) => s + scores[i]!, 0) / members.length;
    const rate = members.reduce((s, i) => s + labels[i]!, 0) / members.length;
    return [members.length, mean, rate];
  });
}

/** Writes a counts file the way preprocess does: customer_id, n_<type> BIGINT…, days_since_last DOUBLE. */
export async function writeCountsParquet(
  file: string,
  eventTypes: string[],
  rows: { customerId: string; counts: number[]; daysSinceLast: number | null }[],
): Promise<void> {
  const instance = await DuckDBInstance.create(':memory:');
  try {
    const connection = await instance.connect();
    const columns = ['customer_id VARCHAR', ...eventTypes.map((t) => `"n_${t}" BIGINT`), 'days_since_last DOUBLE'];
    await connection.run(`CREATE TABLE counts (${columns.join(', ')})`);
    for (const r of rows) {
      await connection.run(
        `INSERT INTO counts VALUES (${['$1', ...r.counts.map((_, j) => `$${j + 2}`), `$${r.counts.length + 2}`].join(', ')})`,
        [r.customerId, ...r.counts, r.daysSinceLast],
      );
    }
    await connection.run('COPY counts TO $file (FORMAT parquet)', { file });
    connection.closeSync();
  } finally {
    instance.closeSync();
  }
}

/**
 * From the Taobao sample, what preprocess would write for one as-of date: per customer with an event
 * in [asOf − lookback, asOf), event counts and days since the last event (counts file), and whether they
 * bought in [asOf, asOf + horizon) (labels, in the returned customer order).
 */
export async function taobaoCountsAndLabels(
  eventsCsv: string,
  countsFile: string,
  o: { asOf: string; lookbackDays: number; horizonDays: number },
): Promise<{ customerIds: string[]; labels: Int8Array }> {
  const instance = await DuckDBInstance.create(':memory:');
  try {
    const connection = await instance.connect();
    const params = { csv: eventsCsv, asOf: o.asOf, lookback: o.lookbackDays, horizon: o.horizonDays };
    await connection.run(
      `CREATE TABLE events AS
         SELECT CAST(user_id AS VARCHAR) AS customer_id, behavior_type AS kind, to_timestamp(timestamp)::TIMESTAMP AS ts
         FROM read_csv($csv)`,
      { csv: eventsCsv },
    );
    await connection.run(
      `COPY (
         SELECT customer_id,
                count(*) FILTER (kind = 'pv')   AS n_pv,
                count(*) FILTER (kind = 'cart') AS n_cart,
                count(*) FILTER (kind = 'fav')  AS n_fav,
                count(*) FILTER (kind = 'buy')  AS n_buy,
                date_diff('second', max(ts), CAST($asOf AS TIMESTAMP)) / 86400.0 AS days_since_last
         FROM events
         WHERE ts < CAST($asOf AS TIMESTAMP) AND ts >= CAST($asOf AS TIMESTAMP) - to_days(CAST($lookback AS INTEGER))
         GROUP BY customer_id ORDER BY customer_id
       ) TO $file (FORMAT parquet)`,
      { asOf: o.asOf, lookback: o.lookbackDays, file: countsFile },
    );
    const reader = await connection.runAndReadAll(
      `SELECT customer_id,
              bool_or(kind = 'buy' AND ts >= CAST($asOf AS TIMESTAMP) AND ts < CAST($asOf AS TIMESTAMP) + to_days(CAST($horizon AS INTEGER)))
         FROM events
         WHERE ts < CAST($asOf AS TIMESTAMP) + to_days(CAST($horizon AS INTEGER))
           AND ts >= CAST($asOf AS TIMESTAMP) - to_days(CAST($lookback AS INTEGER))
         GROUP BY customer_id ORDER BY customer_id`,
      { asOf: params.asOf, horizon: params.horizon, lookback: params.lookback },
    );
    const rows = reader.getRowsJS();
    connection.closeSync();
    return { customerIds: rows.map((r) => String(r[0])), labels: Int8Array.from(rows, (r) => (r[1] ? 1 : 0)) };
  } finally {
    instance.closeSync();
  }
}
