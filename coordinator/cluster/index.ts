/**
 * The cluster stage's door: how workers come to exist (backends), join (registration server), and
 * stay (the pool's heartbeats); and the per-worker handle other stages call (scoring, training).
 */
export type { ClusterBackend, LaunchContext } from './backend.js';
export { startCluster, localOrStaticBackend, clusterOptionsFromJob, type Cluster, type ClusterOptions, type ClusterSecurity } from './cluster.js';
export { WorkerPool, type PoolOptions, type PoolEvent, type LeaveCause } from './pool.js';
export {
  WorkerHandle,
  WorkerCallError,
  type WorkerState,
  type CallOptions,
  type ScoreShardRequest,
  type ScoreShardResult,
} from './worker-handle.js';
export { startRegistrationServer, type RegistrationServer, type RegistrationServerOptions } from './registration.js';
export { LOCAL_WORKER_NODE_FLAGS, LocalBackend, type LocalBackendOptions, type LocalWorkerProcess } from './local.js';
export { StaticBackend, type StaticBackendOptions } from './static.js';
export { readShardPayloads, DEFAULT_TARGET_PAYLOAD_BYTES, type ShardPayload, type ShardPayloadOptions } from './shard-payloads.js';
// What a launcher (the Kubernetes backend) needs to start workers the way this stage expects.
export { WORKER_ENV, PROTOCOL_VERSION, MAX_MESSAGE_BYTES } from '../../proto/index.js';
export { registerWorker, registerWithRetry, type RegisterOptions } from '../../proto/register.js';
export { createK8sBackend, loadK8sBackendOptions, compileK8sBackendOptions, type K8sBackendOptions } from './k8s/index.js';
export { acquireRunLease, checkK8sPrerequisites, connectApi, type RunLease } from './k8s/index.js';
