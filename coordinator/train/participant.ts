import type { TrainRoundInput, TrainRoundOutput, ValidateInput, ValidateOutput } from '../../worker/engine.js';

/** A worker as the trainer sees it: the gRPC client in a cluster, or an engine in this process. */
export interface TrainParticipant {
  readonly id: string;
  /** Ships one training shard (an Arrow IPC stream file) to the participant, which keeps its rows; returns the row count. */
  loadShard(datasetId: string, shard: { id: string; file: string }): Promise<number>;
  trainRound(input: TrainRoundInput): Promise<TrainRoundOutput>;
  validate(input: ValidateInput): Promise<ValidateOutput>;
}
