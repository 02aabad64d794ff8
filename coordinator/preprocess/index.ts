/**
 * The coordinator's preprocess stage: raw events → validated events → point-in-time sequences → Arrow shards.
 * Other stages import this file only.
 */
export { preprocess } from './preprocess.js';
export { saveVocabulary, loadVocabulary, PAD_ID, UNKNOWN_ID, FIRST_TOKEN_ID } from './vocab.js';
export { readShard } from './shards.js';
export { shardsOfCustomerId } from './shard-input.js';
export { REASONS } from './events.js';
export type {
  RejectReason,
  Product,
  Vocabulary,
  ShardFile,
  ShardSet,
  PreprocessStats,
  PreprocessOptions,
  PreprocessResult,
} from './types.js';
