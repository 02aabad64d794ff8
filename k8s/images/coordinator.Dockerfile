# syntax=docker/dockerfile:1.7
# The coordinator: DuckDB preprocessing, scheduling, ensembles, evaluation, publishing, and the
# Kubernetes launcher, as compiled JavaScript (no tsx at run time). Build from the repository root (the
# .dockerignore there keeps the context small):
#   docker build -f k8s/images/coordinator.Dockerfile -t REGISTRY/nextbuy/coordinator:0.1.0 .
#
# Base images are pinned by digest, the tag beside it for humans. To move to a newer patch release:
#   docker buildx imagetools inspect node:20.20-bookworm-slim    # the index digest ("Digest:")
# and replace the sha256 here and in the worker Dockerfiles (test/k8s-images.test.ts checks the format).
ARG NODE_IMAGE=node:20.20-bookworm-slim@sha256:6c51af7dc83f4708aaac35991306bca8f478351cfd2bda35750a62d7efcf05bb

# TypeScript → dist/ (npm run build), with the dev dependencies; nothing from this stage runs in the image.
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

# Production dependencies, the same on every build network: no install script runs (--ignore-scripts), so
# the optional tfjs-node packages never download libtensorflow, and they are removed (the coordinator does
# not train). --omit=optional cannot be used here: DuckDB's linux-x64 binding is an optional dependency.
# Only ONNX Runtime's linux-x64 binaries are kept (the package ships macOS and Windows ones too).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/@tensorflow/tfjs-node node_modules/@tensorflow/tfjs-node-gpu \
 && find node_modules/onnxruntime-node/bin/napi-v6 -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} + \
 && find node_modules/onnxruntime-node/bin/napi-v6/linux -mindepth 1 -maxdepth 1 ! -name x64 -exec rm -rf {} + \
 && test -f node_modules/@duckdb/node-bindings-linux-x64/package.json

FROM ${NODE_IMAGE}
# tini: PID 1 that forwards SIGTERM to node, so a pod deletion lets the run stop cleanly.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 nextbuy \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nextbuy
WORKDIR /app
ENV NODE_ENV=production \
    NEXTBUY_METRICS_PORT=9464
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The Taobao sample: lets the dev overlay run a real night with no data to provision.
COPY examples ./examples
# Numeric, so the kubelet can check runAsNonRoot.
USER 10001:10001
# 9464: /metrics and /healthz; 7070: worker registrations (workers.yaml registrationPort).
EXPOSE 9464 7070
# Kubernetes uses the probes in the manifests; this one serves `docker run` and compose.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.NEXTBUY_METRICS_PORT||9464)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["tini", "--"]
CMD ["node", "dist/jobs/cli.js", "--help"]
