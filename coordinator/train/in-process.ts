import { readFile } from 'node:fs/promises';
import { decodeBatches, toSequenceBatch } from '../../proto/shard-batch.js';
import type { WorkerEngine } from '../../worker/engine.js';
import type { TrainParticipant } from './participant.js';

/** A participant backed by an engine in this process: the single-process path, and the reference in tests. */
export function inProcessParticipant(id: string, engine: WorkerEngine): TrainParticipant {
  return {
    id,
    async loadShard(datasetId, shard) {
      const batches = decodeBatches(await readFile(shard.file)).map(toSequenceBatch);
      return engine.addTrainingData(datasetId, shard.id, batches);
    },
    trainRound: (input) => engine.trainRound(input),
    validate: (input) => engine.validate(input),
  };
}
