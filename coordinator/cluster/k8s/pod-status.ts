/** Why a run's worker pods are not coming: a deleted Job, pods that failed, or pods stuck past the start deadline. */
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { formatDuration } from '../../../core/duration.js';
import { ClusterError } from '../../../core/errors.js';
import { apiStatus, type Api } from './api.js';
import { LABELS, type WorkerObjects } from './objects.js';

/** Why the workers will not come, or null while they still may. */
export async function inspectWorkers(
  api: Api,
  objects: WorkerObjects,
  startDeadlineMs: number,
  launchedAt: number,
  firstSeen: Map<string, number>,
  now: () => number = Date.now,
): Promise<ClusterError | null> {
  const ns = api.namespace;
  const jobName = objects.job.metadata!.name!;
  let job: V1Job;
  try {
    job = await api.batch.readNamespacedJob({ name: jobName, namespace: ns });
  } catch (e) {
    if (apiStatus(e) === 404) return new ClusterError(`worker Job ${ns}/${jobName} was deleted while the run needed it (by someone, or by activeDeadlineSeconds cleanup)`);
    throw e;
  }
  const failed = job.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
  if (failed) {
    return new ClusterError(
      `worker Job ${ns}/${jobName} failed: ${failed.reason ?? 'unknown reason'}${failed.message ? `: ${failed.message}` : ''}. ` +
        `Check the workers' logs: kubectl -n ${ns} logs -l ${LABELS.launch}=${objects.launchId} --tail=50`,
    );
  }
  const pods = (await api.core.listNamespacedPod({ namespace: ns, labelSelector: `${LABELS.launch}=${objects.launchId}` })).items;
  const t = now();
  if (pods.length === 0 && t - launchedAt >= startDeadlineMs) {
    return new ClusterError(
      `no worker pod was created within ${formatDuration(startDeadlineMs)} of launching Job ${ns}/${jobName}: ` +
        `a ResourceQuota, LimitRange or admission policy may be refusing them. Check: kubectl -n ${ns} describe job ${jobName}`,
    );
  }
  for (const pod of pods) {
    const podName = pod.metadata?.name ?? '(unnamed)';
    const key = pod.metadata?.uid ?? podName;
    if (!firstSeen.has(key)) firstSeen.set(key, Math.max(t, launchedAt));
    const stuck = whyNotStarted(pod);
    if (!stuck) continue;
    const waited = t - firstSeen.get(key)!;
    if (!stuck.fatal && waited < startDeadlineMs) continue;
    const forHow = stuck.fatal ? '' : ` (for ${formatDuration(waited)}, start deadline ${formatDuration(startDeadlineMs)})`;
    return new ClusterError(`worker pod ${ns}/${podName} cannot start: ${stuck.reason}${stuck.message ? `: ${stuck.message}` : ''}${forHow}. ${stuck.hint(ns, podName)}`);
  }
  return null;
}

interface Stuck {
  reason: string;
  message: string;
  /** Cannot get better by waiting. */
  fatal: boolean;
  hint(ns: string, pod: string): string;
}

const IMAGE_REASONS = new Set(['ImagePullBackOff', 'ErrImagePull', 'InvalidImageName', 'ErrImageNeverPull', 'RegistryUnavailable']);
const FATAL_REASONS = new Set(['InvalidImageName', 'ErrImageNeverPull']);

/**
 * Why a pod has not started: null once it runs (or has finished; the Job controller handles failed pods).
 * Any Pending pod gets a reason, which becomes an error only past the start deadline unless `fatal`.
 */
export function whyNotStarted(pod: V1Pod): Stuck | null {
  const phase = pod.status?.phase;
  if (phase !== 'Pending' && phase !== undefined) return null;
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  for (const s of statuses) {
    const waiting = s.state?.waiting;
    if (!waiting?.reason) continue;
    if (IMAGE_REASONS.has(waiting.reason)) {
      return {
        reason: waiting.reason,
        message: waiting.message ?? '',
        fatal: FATAL_REASONS.has(waiting.reason),
        hint: (ns, p) =>
          `Check that image ${s.image ?? ''} exists and its tag is right (workers.yaml: image), and that namespace ${ns} may pull it ` +
          `(imagePullSecrets). Details: kubectl -n ${ns} describe pod ${p}`,
      };
    }
    if (waiting.reason === 'CreateContainerConfigError' || waiting.reason === 'CreateContainerError') {
      return {
        reason: waiting.reason,
        message: waiting.message ?? '',
        fatal: false,
        hint: (ns, p) => `Check the Secrets and ConfigMaps the pod refers to. Details: kubectl -n ${ns} describe pod ${p}`,
      };
    }
  }
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False') {
    const message = scheduled.message ?? '';
    const gpu = /nvidia\.com\/gpu/.test(message);
    return {
      reason: scheduled.reason ?? 'Unschedulable',
      message,
      fatal: false,
      hint: (ns, p) =>
        gpu
          ? `No node has a free nvidia.com/gpu that the workers may use: check GPU node capacity (kubectl describe nodes), that workers.yaml ` +
            `tolerations and nodeSelector match the GPU nodes, and namespace ${ns}'s quota; or lower cluster.workers or gpusPerPod. Details: kubectl -n ${ns} describe pod ${p}`
          : `Check node capacity against workers.yaml resources, nodeSelector and tolerations. Details: kubectl -n ${ns} describe pod ${p}`,
    };
  }
  const waitingReason = statuses.map((s) => s.state?.waiting?.reason).find((r) => r);
  return {
    reason: waitingReason ?? 'Pending',
    message: statuses.map((s) => s.state?.waiting?.message).find((m) => m) ?? '',
    fatal: false,
    hint: (ns, p) => `Details: kubectl -n ${ns} describe pod ${p} (volumes, image size, node readiness)`,
  };
}
