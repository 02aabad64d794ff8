/**
 * The schedule stage's door: ships shard files to the pool's workers with bounded work in flight,
 * re-leases what fails, and hands back exactly one accepted result per shard.
 */
export { runShards } from './scheduler.js';
export {
  compileScheduleOptions,
  scheduleOptionsFromJob,
  type ShardTask,
  type ShardWork,
  type ScoreWork,
  type TrainingDataWork,
  type ScheduleOptions,
  type CompiledScheduleOptions,
  type ScheduleEvent,
  type ShardRunSummary,
} from './options.js';
