# syntax=docker/dockerfile:1.7
# A CPU worker (dev overlay, and clusters without GPUs): scores with onnxruntime-node (CPU provider),
# trains with tfjs + the WASM backend, as compiled JavaScript. Build from the repository root:
#   docker build -f k8s/images/worker-cpu.Dockerfile -t REGISTRY/nextbuy/worker-cpu:0.1.0 .
# Base image pinned by digest: see the header of coordinator.Dockerfile to move it.
ARG NODE_IMAGE=node:20.20-bookworm-slim@sha256:6c51af7dc83f4708aaac35991306bca8f478351cfd2bda35750a62d7efcf05bb

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

# No native TensorFlow (--omit=optional: tfjs-node never installs, whatever the build network) and no
# install scripts. What only the coordinator uses goes: the worker's code (worker/, core/, proto/) imports
# neither DuckDB nor the Kubernetes client (test/k8s-images.test.ts checks). ONNX Runtime: linux-x64 only.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/@duckdb node_modules/@kubernetes/client-node \
 && find node_modules/onnxruntime-node/bin/napi-v6 -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} + \
 && find node_modules/onnxruntime-node/bin/napi-v6/linux -mindepth 1 -maxdepth 1 ! -name x64 -exec rm -rf {} +

FROM ${NODE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 nextbuy \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nextbuy
WORKDIR /app
ENV NODE_ENV=production \
    NEXTBUY_WORKER_PORT=7071 \
    NEXTBUY_METRICS_PORT=9470
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/package.json ./dist/package.json
COPY --from=build /app/dist/core ./dist/core
COPY --from=build /app/dist/proto ./dist/proto
COPY --from=build /app/dist/worker ./dist/worker
USER 10001:10001
EXPOSE 7071 9470
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.NEXTBUY_METRICS_PORT||9470)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The launcher sets the whole command line as `args` (coordinator/cluster/k8s/objects.ts); tini stays PID 1.
ENTRYPOINT ["tini", "--"]
CMD ["node", "dist/worker/main.js", "--host", "0.0.0.0", "--port", "7071"]
