export { createK8sBackend } from './kubernetes-backend.js';
export { acquireRunLease, runLeaseName, type RunLease, type RunLeaseOptions } from './run-lease.js';
export { connectApi, loadKubeConfig, type Api, type ConnectOptions } from './api.js';
export { checkK8sPrerequisites, type K8sPrerequisitesOptions } from './prerequisites.js';
export { buildWorkerObjects, coordinatorAddress, LABELS, NEXTBUY_UID, ownedByJob, WORKER_ARGV, WORKER_CONTAINER, type WorkerObjects } from './objects.js';
export {
  compileK8sBackendOptions,
  DEFAULT_WORKER_RESOURCES,
  DEFAULT_REGISTRATION_PORT,
  DEFAULT_WORKERS_CONF,
  loadK8sBackendOptions,
  parseWorkersYaml,
  TLS_MOUNT,
  type CompiledK8sBackendOptions,
  type K8sBackendOptions,
  type K8sPodTemplate,
  type K8sResources,
} from './options.js';
export { whyNotStarted } from './pod-status.js';
