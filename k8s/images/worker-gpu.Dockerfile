# syntax=docker/dockerfile:1.7
# A GPU worker: the CPU worker's code and lockfile, on a CUDA + cuDNN base, plus
# @tensorflow/tfjs-node-gpu (native TensorFlow). Build from the repository root:
#   docker build -f k8s/images/worker-gpu.Dockerfile -t nextbuy-worker-gpu:0.1.0 .
#
# Versions: tfjs-node-gpu 4.22.0 loads libtensorflow 2.9.1, built for CUDA 11.2 and cuDNN 8.1. The base
# carries CUDA 11.8 and cuDNN 8: CUDA 11.x minor-version compatibility (same sonames, libcudart.so.11.0)
# and cuDNN 8's stable ABI let 2.9.1 run on them, and 11.8 is the first CUDA that knows Hopper (H100)
# GPUs, whose kernels TensorFlow 2.9 JIT-compiles from PTX on first use (slower first epoch, then cached).
# The node needs an NVIDIA driver ≥ 520 and the NVIDIA device plugin (resource nvidia.com/gpu).
# TFJS_NODE_GPU_VERSION must equal the locked @tensorflow/tfjs version (test/k8s-images.test.ts checks it).
ARG NODE_IMAGE=node:20.20-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04
ARG TFJS_NODE_GPU_VERSION=4.22.0

# Node itself: the official Linux binaries need glibc ≥ 2.28; Ubuntu 22.04 has 2.35.
FROM ${NODE_IMAGE} AS node

FROM ${CUDA_IMAGE} AS deps
ARG TFJS_NODE_GPU_VERSION
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
# The lockfile's tree first, then tfjs-node-gpu on top of it without touching package.json or the lockfile.
# Its install script downloads libtensorflow (GPU) from storage.googleapis.com: the build needs that egress.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund \
 && npm install --omit=dev --no-save --no-audit --no-fund "@tensorflow/tfjs-node-gpu@${TFJS_NODE_GPU_VERSION}" \
 && ls node_modules/@tensorflow/tfjs-node-gpu/deps/lib/ | grep -q libtensorflow \
 && ls node_modules/@tensorflow/tfjs-node-gpu/lib/napi-v*/tfjs_binding.node

FROM ${CUDA_IMAGE}
COPY --from=node /usr/local/bin/node /usr/local/bin/node
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 nextbuy \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nextbuy
WORKDIR /app
ENV NODE_ENV=production \
    NEXTBUY_WORKER_PORT=7071 \
    NEXTBUY_METRICS_PORT=9464 \
    TF_CPP_MIN_LOG_LEVEL=1
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY core ./core
COPY proto ./proto
COPY worker ./worker
USER 10001:10001
EXPOSE 7071 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.NEXTBUY_METRICS_PORT||9464)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["tini", "--"]
CMD ["node", "--import", "tsx", "worker/main.ts", "--host", "0.0.0.0", "--port", "7071"]
