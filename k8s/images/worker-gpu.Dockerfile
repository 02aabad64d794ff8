# syntax=docker/dockerfile:1.7
# A GPU worker: the CPU worker's compiled code on a CUDA base, training with @tensorflow/tfjs-node-gpu
# (native TensorFlow) and scoring with ONNX Runtime's CUDA execution provider (the launcher sets
# NEXTBUY_ONNX_DEVICE=cuda on GPU pods; where CUDA cannot start the worker scores on the CPU and logs a
# warning). Build from the repository root:
#   docker build -f k8s/images/worker-gpu.Dockerfile -t REGISTRY/nextbuy/worker-gpu:0.1.0 .
#
# Two CUDA generations side by side (their libraries have different sonames, so they do not clash):
# - tfjs-node-gpu 4.22.0 loads libtensorflow 2.9.1, built for CUDA 11.2 and cuDNN 8: the base carries
#   CUDA 11.8 and cuDNN 8 (11.x minor-version compatibility; 11.8 is the first CUDA that knows Hopper,
#   whose kernels TensorFlow 2.9 JIT-compiles from PTX on first use).
# - onnxruntime-node 1.30's CUDA provider needs CUDA 12 and cuDNN 9: their runtime libraries come from
#   NVIDIA's apt repository, which the base image already lists (CUDA_12_MINOR picks the release).
# The node needs an NVIDIA driver that runs CUDA 12.x (≥ 525 with minor-version compatibility; ≥ 570 for
# 12.8 natively) and the NVIDIA device plugin (resource nvidia.com/gpu).
# The build needs egress to storage.googleapis.com (libtensorflow) and api.nuget.org (ONNX Runtime's CUDA
# provider): both install scripts download them, and the build fails loudly (checks below) without them.
# Base images pinned by digest: see the header of coordinator.Dockerfile to move them
# (docker buildx imagetools inspect nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04).
ARG NODE_IMAGE=node:20.20-bookworm-slim@sha256:6c51af7dc83f4708aaac35991306bca8f478351cfd2bda35750a62d7efcf05bb
ARG CUDA_IMAGE=nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04@sha256:85fb7ac694079fff1061a0140fd5b5a641997880e12112d92589c3bbb1e8b7ca
ARG CUDA_12_MINOR=8

# Node itself: the official Linux binaries need glibc ≥ 2.28; Ubuntu 22.04 has 2.35.
FROM ${NODE_IMAGE} AS node

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY core ./core
COPY proto ./proto
COPY coordinator ./coordinator
COPY worker ./worker
COPY jobs ./jobs
RUN npm run build

# Production dependencies with their install scripts: tfjs-node-gpu fetches libtensorflow (GPU) and
# onnxruntime-node fetches its CUDA provider (ONNXRUNTIME_NODE_INSTALL=true; the other images set skip).
# Then: no CPU-only tfjs-node, nothing only the coordinator uses, ONNX Runtime for linux-x64 only.
FROM ${CUDA_IMAGE} AS deps
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=true
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/@tensorflow/tfjs-node node_modules/@duckdb node_modules/@kubernetes/client-node \
 && find node_modules/onnxruntime-node/bin/napi-v6 -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} + \
 && find node_modules/onnxruntime-node/bin/napi-v6/linux -mindepth 1 -maxdepth 1 ! -name x64 -exec rm -rf {} + \
 && ls node_modules/@tensorflow/tfjs-node-gpu/deps/lib/ | grep -q libtensorflow \
 && ls node_modules/@tensorflow/tfjs-node-gpu/lib/napi-v*/tfjs_binding.node \
 && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so

FROM ${CUDA_IMAGE}
ARG CUDA_12_MINOR
COPY --from=node /usr/local/bin/node /usr/local/bin/node
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates \
      cuda-cudart-12-${CUDA_12_MINOR} libcublas-12-${CUDA_12_MINOR} libcufft-12-${CUDA_12_MINOR} libcurand-12-${CUDA_12_MINOR} libcudnn9-cuda-12 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 nextbuy \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nextbuy
WORKDIR /app
# LD_LIBRARY_PATH: CUDA 12's runtime for ONNX Runtime, before the base's own entries (the driver's, CUDA 11.8's).
ENV NODE_ENV=production \
    NEXTBUY_WORKER_PORT=7071 \
    NEXTBUY_METRICS_PORT=9470 \
    NEXTBUY_ONNX_DEVICE=cuda \
    LD_LIBRARY_PATH=/usr/local/cuda-12.${CUDA_12_MINOR}/targets/x86_64-linux/lib:${LD_LIBRARY_PATH} \
    TF_CPP_MIN_LOG_LEVEL=1
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/package.json ./dist/package.json
COPY --from=build /app/dist/core ./dist/core
COPY --from=build /app/dist/proto ./dist/proto
COPY --from=build /app/dist/worker ./dist/worker
USER 10001:10001
EXPOSE 7071 9470
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.NEXTBUY_METRICS_PORT||9470)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["tini", "--"]
CMD ["node", "dist/worker/main.js", "--host", "0.0.0.0", "--port", "7071"]
