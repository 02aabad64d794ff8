/** Commits the night's prediction table (the per-product ensemble scores) and the marketing audiences. */
import path from 'node:path';
import type { Job } from '../../jobs/job.js';
import { DAY_MS } from '../../jobs/job.js';
import { formatDate, parseDateMs } from '../../jobs/job-file.js';
import { AUDIENCE_MANIFEST, dateDir, exportAudiences, exportCsv, publishPredictions, removeDateCommit, writeDateCommit } from '../publish/index.js';
import type { PreprocessResult } from '../preprocess/index.js';
import { ensembledScores, type EnsembleFile, type NightScores } from './evaluate-stage.js';
import type { RunFolder } from './run-folder.js';
import { files, requireJson, type ModelsFile } from './state.js';

export interface PublishSummary {
  predictionsDir: string;
  audiencesDir: string;
  csvFile: string;
  partitions: { product: string; rows: number; dir: string }[];
}

export interface PublishStageOptions {
  job: Job;
  folder: RunFolder;
  pre: PreprocessResult;
  models: ModelsFile;
  /** The night's ensembled scores when evaluate ran in the same invocation; read from the run folder otherwise. */
  night: NightScores | null;
}

/**
 * Test hook for end-to-end fault injection: `NEXTBUY_TEST_KILL_AT=<crash point>[@<product>]` SIGKILLs the
 * process at that point of the publish (see CRASH_POINTS in coordinator/publish/publish.ts).
 */
export const KILL_AT_ENV = 'NEXTBUY_TEST_KILL_AT';

export async function publishStage(o: PublishStageOptions): Promise<PublishSummary> {
  const { job, folder } = o;
  const ensembles = await requireJson<EnsembleFile>(files(folder).ensemble, 'evaluate', folder);
  const { rows, perProduct } = o.night ?? (await ensembledScores(folder, o.pre, o.models, ensembles));
  const dateMs = parseDateMs(folder.date)!;
  const common = {
    outDir: folder.outDir,
    account: job.account,
    date: folder.date,
    runId: folder.runId,
    // The logical time of the scores (the as-of instant), so that a rerun writes identical bytes.
    scoredAt: `${folder.date}T00:00:00.000Z`,
    actions: job.actions,
    inputWindow: { from: formatDate(dateMs - job.sequence.lookbackDays * DAY_MS), to: formatDate(dateMs - DAY_MS) },
    products: perProduct.map((p) => ({
      product: p.product,
      customerIds: rows.customerIds,
      scores: p.ensemble.scores,
      modelVersions: p.models.map((m) => m.modelVersion),
      ensemble: ensembles.products[p.product],
    })),
  };
  const where = { outDir: folder.outDir, account: job.account, date: folder.date };
  await removeDateCommit(where.outDir, where.account, where.date);
  const killAt = process.env[KILL_AT_ENV];
  const result = await publishPredictions({
    ...common,
    memoryLimit: job.resources.memoryLimit,
    ...(killAt ? { crashAt: killAt, crashBy: 'kill' as const } : {}),
  });
  const audiences = await exportAudiences(where);
  const csv = await exportCsv(where);
  await writeDateCommit({
    ...where,
    runId: folder.runId,
    products: result.partitions.map((p) => p.product),
    audienceManifest: path.join(audiences.dir, AUDIENCE_MANIFEST),
    exports: [csv.file],
  });
  return {
    predictionsDir: dateDir(folder.outDir, job.account, folder.date),
    audiencesDir: audiences.dir,
    csvFile: csv.file,
    partitions: result.partitions.map((p) => ({ product: p.product, rows: p.manifest.rowCount, dir: p.dir })),
  };
}
