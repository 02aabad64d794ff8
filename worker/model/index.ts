/**
 * worker/model — the worker's sequence models and their runtimes: tfjs training (LSTM and product-keyed
 * attention LSTM) on the best backend available, ONNX export and ONNX Runtime scoring, explanations,
 * and versioned model artifacts. Other stages import this file only.
 */
export type { ModelSpec, Architecture, WeightEntry } from './spec.js';
export { parseSpec, weightLayout, weightCount, embeddedColumns, inputWidth, specKey } from './spec.js';
export { initialWeights, splitWeights } from './weights.js';

export type { BackendChoice, SelectBackendOptions, TfjsRuntime } from './runtime.js';
export { selectBackend, useBackend, availableBackends, parseRuntimeList, TFJS_RUNTIMES } from './runtime.js';

export type { SequenceModel, TrainStepsOptions, TrainStepsResult, PredictOptions } from './model.js';
export { createModel, modelFromWeights } from './model.js';
export type { ExplainOptions, ExplainedEvent, Explanation } from './explain.js';

export type { FitOptions, EpochMetrics, FitResult } from './train.js';
export { fit, labelledScores } from './train.js';
export { rowsOfSplit, concatBatches, selectRows, lastPositions } from './batch.js';
export { auc } from './metrics.js';

export type { ExportableModel } from './onnx-export.js';
export { exportOnnx, tryExportOnnx, specFromOnnx, ONNX_OPSET } from './onnx-export.js';
export type { OnnxScorerOptions } from './onnx-scorer.js';
export { ONNX_DEVICES, OnnxScorer, onnxRuntimes, type OnnxDevice } from './onnx-scorer.js';

export type { ArtifactContents, ArtifactManifest, LoadedArtifact } from './artifact.js';
export {
  saveArtifact,
  loadArtifact,
  artifactFiles,
  artifactFromFiles,
  artifactToFiles,
  ARTIFACT_FORMAT,
  ARTIFACT_FORMAT_VERSION,
  NEXTBUY_VERSION,
} from './artifact.js';
