/**
 * A SequenceBatch whose dense arrays are built on first use. The server hands these to the engine
 * for scoring: an engine that reads only some fields (the echo engine reads the id bytes) skips the
 * left-padding of every list column, which is most of a worker's cost per batch.
 * The first read of any dense field builds them all with toSequenceBatch, errors included.
 */
import type { RecordBatch } from 'apache-arrow';
import { ProtocolError } from '../core/errors.js';
import { SHARD_SCHEMA_VERSION, readUtf8Bytes, readUtf8Column, toSequenceBatch, type SequenceBatch } from '../proto/shard-batch.js';

export function lazySequenceBatch(batch: RecordBatch): SequenceBatch {
  // Checked now, so a shard of another version fails before any scoring.
  if (batch.schema.metadata.get('nextbuy.shard_schema') !== SHARD_SCHEMA_VERSION) return toSequenceBatch(batch);
  const ids = batch.getChild('customer_id');
  if (!ids) throw new ProtocolError('shard batch has no column "customer_id": it was not built by this nextbuy\'s preprocess');
  let dense: SequenceBatch | undefined;
  let customerIds: string[] | undefined;
  const full = () => (dense ??= toSequenceBatch(batch));
  return {
    size: batch.numRows,
    get customerIds() {
      return (customerIds ??= dense?.customerIds ?? readUtf8Column(ids));
    },
    customerIdBytes: readUtf8Bytes(ids),
    get maxLength() {
      return full().maxLength;
    },
    get historyLength() {
      return full().historyLength;
    },
    get tokens() {
      return full().tokens;
    },
    get features() {
      return full().features;
    },
    get featureNames() {
      return full().featureNames;
    },
    get products() {
      return full().products;
    },
    get wide() {
      return full().wide;
    },
    get wideFeatures() {
      return full().wideFeatures;
    },
    get labels() {
      return full().labels;
    },
    get snapshot() {
      return full().snapshot;
    },
    get weight() {
      return full().weight;
    },
    get split() {
      return full().split;
    },
  };
}
