/**
 * On Kubernetes, one run per account and date across pods too: a coordination.k8s.io/v1 Lease named after
 * the account and date, created by the run that takes the date, renewed while it runs, deleted when it
 * ends. A second coordinator finds it held and is refused (LockedError, exit 10); a Lease not renewed for
 * `leaseDurationSeconds` (its holder was killed) is taken over with an optimistic-concurrency replace, so
 * of two coordinators racing for an expired Lease exactly one wins.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import type { V1Lease } from '@kubernetes/client-node';
import { LockedError } from '../../../core/errors.js';
import { log as defaultLog, type Logger } from '../../../core/log.js';
import { apiError, apiStatus, type Api } from './api.js';

export interface RunLeaseOptions {
  api: Api;
  account: string;
  date: string;
  /** Who holds it, in the Lease and in refusals. @default '<hostname>/<pid>' (the pod name on Kubernetes) */
  holder?: string;
  /** A Lease not renewed for this long is expired. @default 120 */
  leaseDurationSeconds?: number;
  /** @default 10_000 ms */
  renewEveryMs?: number;
  logger?: Logger;
}

export interface RunLease {
  name: string;
  release(): Promise<void>;
}

/** `nextbuy-run-<account>-<date>-<hash>`: a valid object name for any account (lowercased, other characters as '-'). */
export function runLeaseName(account: string, date: string): string {
  const readable = `${account}-${date}`.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 200);
  const hash = createHash('sha256').update(`${account}\n${date}`).digest('hex').slice(0, 8);
  return `nextbuy-run-${readable}-${hash}`;
}

export async function acquireRunLease(o: RunLeaseOptions): Promise<RunLease> {
  const { api } = o;
  const ns = api.namespace;
  const name = runLeaseName(o.account, o.date);
  const holder = o.holder ?? `${os.hostname()}/${process.pid}`;
  const duration = o.leaseDurationSeconds ?? 120;
  const logger = o.logger ?? defaultLog;
  const { V1MicroTime } = await import('@kubernetes/client-node');
  const now = () => new V1MicroTime();
  const spec = () => ({ holderIdentity: holder, leaseDurationSeconds: duration, acquireTime: now(), renewTime: now() });
  const labels = { 'app.kubernetes.io/name': 'nextbuy', 'app.kubernetes.io/component': 'run-lease' };

  let lease: V1Lease;
  try {
    lease = await api.coordination.createNamespacedLease({ namespace: ns, body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, labels }, spec: spec() } });
  } catch (e) {
    if (apiStatus(e) !== 409) throw apiError(`create the run Lease ${name}`, e, ns);
    const held = await api.coordination.readNamespacedLease({ name, namespace: ns }).catch((err: unknown) => {
      throw apiError(`read the run Lease ${name}`, err, ns);
    });
    const renewed = new Date(held.spec?.renewTime ?? held.spec?.acquireTime ?? Number.NaN).getTime();
    const ageS = (Date.now() - renewed) / 1000;
    const expired = !(ageS <= (held.spec?.leaseDurationSeconds ?? duration));
    if (!expired) {
      throw new LockedError(
        `account ${o.account} date ${o.date} is being run by ${held.spec?.holderIdentity ?? 'another coordinator'} (Lease ${ns}/${name}, renewed ${Math.round(ageS)} s ago); ` +
          `nothing was touched. Wait for it to finish, or delete the Lease if that coordinator is gone.`,
      );
    }
    try {
      lease = await api.coordination.replaceNamespacedLease({ name, namespace: ns, body: { ...held, spec: { ...held.spec, ...spec(), leaseTransitions: (held.spec?.leaseTransitions ?? 0) + 1 } } });
    } catch (err) {
      if (apiStatus(err) === 409) throw new LockedError(`account ${o.account} date ${o.date}: another coordinator took the expired Lease ${ns}/${name} first; nothing was touched`);
      throw apiError(`take over the run Lease ${name}`, err, ns);
    }
    logger.warn('run.lease_taken_over', { account: o.account, date: o.date, lease: name, previousHolder: held.spec?.holderIdentity ?? null, ageS: Math.round(ageS) });
  }

  let released = false;
  const timer = setInterval(() => {
    void (async () => {
      if (released) return;
      lease = await api.coordination.replaceNamespacedLease({ name, namespace: ns, body: { ...lease, spec: { ...lease.spec, renewTime: now() } } });
    })().catch((e: unknown) => logger.warn('run.lease_renew_failed', { lease: name, error: (e as Error).message }));
  }, o.renewEveryMs ?? 10_000);
  timer.unref();

  return {
    name,
    async release() {
      released = true;
      clearInterval(timer);
      try {
        const current = await api.coordination.readNamespacedLease({ name, namespace: ns });
        if (current.spec?.holderIdentity === holder) await api.coordination.deleteNamespacedLease({ name, namespace: ns });
      } catch (e) {
        if (apiStatus(e) !== 404) logger.warn('run.lease_release_failed', { lease: name, error: (e as Error).message });
      }
    },
  };
}
