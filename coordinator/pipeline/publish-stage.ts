/** Commits the night's prediction table (the per-product ensemble scores) and the marketing audiences. */
import type { Job } from '../../jobs/job.js';
import { DAY_MS } from '../../jobs/job.js';
import { formatDate, parseDateMs } from '../../jobs/job-file.js';
import { dateDir, exportAudiences, exportCsv, publishPredictions } from '../publish/index.js';
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
  const result = await publishPredictions({
    ...common,
    memoryLimit: job.resources.memoryLimit,
    ...(job.output.publishedMode ? { modes: job.output.publishedMode } : {}),
  });
  const where = { outDir: folder.outDir, account: job.account, date: folder.date, csvFormulaGuard: job.output.csvFormulaGuard ?? true };
  const audiences = await exportAudiences(where);
  const csv = await exportCsv(where);
  return {
    predictionsDir: dateDir(folder.outDir, job.account, folder.date),
    audiencesDir: audiences.dir,
    csvFile: csv.file,
    partitions: result.partitions.map((p) => ({ product: p.product, rows: p.manifest.rowCount, dir: p.dir })),
  };
}
