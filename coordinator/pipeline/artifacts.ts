/** Model artifacts as the pipeline writes and ships them (the format itself is worker/model's). */
import type { ModelSpec } from '../../proto/model-spec.js';
import { artifactFiles, saveArtifact, tryExportOnnx } from '../../worker/model/index.js';

export interface ModelArtifactInput {
  modelVersion: string;
  spec: ModelSpec;
  weights: Float32Array;
  vocabulary: unknown;
  preprocessing: unknown;
  trainingWindow: Record<string, unknown>;
  metrics: Record<string, unknown>;
}

/** Exports the trained weights to ONNX (null, with a log line, where the architecture cannot be) and saves the artifact. */
export async function writeModelArtifact(dir: string, a: ModelArtifactInput): Promise<void> {
  const onnx = tryExportOnnx({ spec: a.spec, getWeights: () => a.weights });
  await saveArtifact(dir, { ...a, onnx });
}

export const loadArtifactFiles = artifactFiles;
