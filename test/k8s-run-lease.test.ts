/**
 * On Kubernetes, one run per account and date: a coordination.k8s.io Lease named after the account and
 * date, exercised against the fake API server (real HTTP, the client library's real calls). No real
 * Kubernetes API server runs here.
 */
import { afterEach, expect, test } from 'vitest';
import { connectApi } from '../coordinator/cluster/k8s/api.js';
import { acquireRunLease, runLeaseName } from '../coordinator/cluster/k8s/run-lease.js';
import { LockedError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { startFakeKubeApi, type FakeKubeApi } from './helpers/fake-kube-api.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function setup(): Promise<{ fake: FakeKubeApi; api: Awaited<ReturnType<typeof connectApi>>; lines: Record<string, unknown>[] }> {
  const fake = await startFakeKubeApi();
  cleanups.push(() => fake.close());
  const api = await connectApi({ apiServer: fake.url, namespace: 'nextbuy' });
  return { fake, api, lines: [] };
}

const quiet = (lines: Record<string, unknown>[]) =>
  createLogger({ format: 'json', level: 'info', stream: { write: (s: string) => lines.push(...s.trim().split('\n').map((l) => JSON.parse(l))) } });

test('a held Lease refuses a second coordinator; releasing it lets the next one in', async () => {
  const { fake, api, lines } = await setup();
  const a = await acquireRunLease({ api, account: 'Shop_1', date: '2017-12-02', holder: 'coordinator-a', logger: quiet(lines) });
  expect(a.name).toBe(runLeaseName('Shop_1', '2017-12-02'));
  expect(a.name).toMatch(/^nextbuy-run-shop-1-2017-12-02-[0-9a-f]{8}$/);
  const [lease] = fake.objects('leases');
  expect(lease!.metadata.namespace).toBe('nextbuy');
  expect(lease!.spec.holderIdentity).toBe('coordinator-a');

  const refused = await acquireRunLease({ api, account: 'Shop_1', date: '2017-12-02', holder: 'coordinator-b' }).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(LockedError);
  expect((refused as Error).message).toMatch(/being run by coordinator-a .*nothing was touched/);
  // Another date is another Lease.
  const other = await acquireRunLease({ api, account: 'Shop_1', date: '2017-12-03', holder: 'coordinator-b' });

  await a.release();
  expect(fake.objects('leases').map((l) => l.spec.holderIdentity)).toEqual(['coordinator-b']);
  const b = await acquireRunLease({ api, account: 'Shop_1', date: '2017-12-02', holder: 'coordinator-b' });
  await b.release();
  await other.release();
  expect(fake.objects('leases')).toEqual([]);
});

test('a Lease not renewed within its duration is taken over (logged); a live holder renews its Lease', async () => {
  const { fake, api, lines } = await setup();
  const a = await acquireRunLease({ api, account: 'taobao', date: '2017-12-02', holder: 'killed-pod', leaseDurationSeconds: 60, renewEveryMs: 60_000 });
  // The holder was killed 5 minutes ago: its last renewal is that old.
  fake.objects('leases')[0]!.spec.renewTime = new Date(Date.now() - 300_000).toISOString();
  const b = await acquireRunLease({ api, account: 'taobao', date: '2017-12-02', holder: 'new-pod', renewEveryMs: 20, logger: quiet(lines) });
  const [lease] = fake.objects('leases');
  expect(lease!.spec).toMatchObject({ holderIdentity: 'new-pod', leaseTransitions: 1 });
  expect(lines).toContainEqual(expect.objectContaining({ event: 'run.lease_taken_over', previousHolder: 'killed-pod' }));

  // The new holder renews (PUT with the current resourceVersion); the old one's release leaves it alone.
  await fake.waitForCalls((c) => c.verb === 'update' && c.status === 200, 3);
  await a.release();
  expect(fake.objects('leases').map((l) => l.spec.holderIdentity)).toEqual(['new-pod']);
  await b.release();
  expect(fake.objects('leases')).toEqual([]);
});
