/**
 * What `--env k8s` needs, checked before a run does any work (no lock, no run folder, no preprocessing), so
 * that a laptop without a cluster fails at once with what to do instead of after minutes of preprocessing.
 * Nothing here calls the API server: a kube config that loads is checked, not one that answers.
 */
import { ClusterError, ConfigError, JobFileError } from '../../../core/errors.js';
import type { Job } from '../../../jobs/job.js';
import { loadKubeConfig } from './api.js';
import { compileK8sBackendOptions, DEFAULT_WORKERS_CONF, loadK8sBackendOptions, type K8sBackendOptions } from './options.js';

export interface K8sPrerequisitesOptions {
  job: Job;
  /** Where NEXTBUY_WORKERS_CONF and the downward-API variables (POD_NAME, POD_UID, POD_IP) are read. @default process.env */
  env?: NodeJS.ProcessEnv;
}

/**
 * Checks, in order: workers.yaml (NEXTBUY_WORKERS_CONF or /etc/nextbuy/workers.yaml) loads and is complete;
 * a kube config loads (KUBECONFIG, ~/.kube/config or the pod's service account); the coordinator pod's
 * name, uid and IP are set; a job with security.tls has the workers' Secret named. Throws a JobFileError or
 * ConfigError (exit 3) saying what to set; returns the loaded launcher options.
 */
export async function checkK8sPrerequisites(o: K8sPrerequisitesOptions): Promise<K8sBackendOptions> {
  const env = o.env ?? process.env;
  const file = env.NEXTBUY_WORKERS_CONF || DEFAULT_WORKERS_CONF;
  const options = await loadK8sBackendOptions(file, env);
  let compiled;
  try {
    compiled = compileK8sBackendOptions(options);
  } catch (e) {
    if (e instanceof ClusterError) throw new ConfigError(`${file}: ${e.message}`);
    throw e;
  }
  try {
    await loadKubeConfig({ kubeConfig: options.kubeConfig, apiServer: options.apiServer });
  } catch (e) {
    if (e instanceof ClusterError) throw new ConfigError(e.message);
    throw e;
  }
  const missing = [
    ...(compiled.coordinatorPod ? [] : (['POD_NAME', 'POD_UID'] as const).filter((k) => !env[k])),
    ...(compiled.coordinatorHost ? [] : ['POD_IP']),
  ];
  if (missing.length > 0) {
    throw new ConfigError(
      `--env k8s runs the coordinator in a pod and needs ${missing.join(', ')} from the downward API (fieldRef metadata.name, metadata.uid, status.podIP), ` +
        'as k8s/base/cronjob.yaml sets them: start the run from that CronJob (kubectl create job --from=cronjob/…), or use --env local on this machine',
    );
  }
  if (o.job.security?.tls && !compiled.tlsSecret) {
    throw new JobFileError(file, 'tlsSecret', 'is required: the job sets security.tls, so the workers need their certificates: create a Secret with ca.crt, tls.crt and tls.key and name it here');
  }
  return options;
}
