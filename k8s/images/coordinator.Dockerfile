# syntax=docker/dockerfile:1.7
# The coordinator: DuckDB preprocessing, scheduling, ensembles, evaluation, publishing, and the
# Kubernetes launcher. Build from the repository root (the .dockerignore there keeps the context small):
#   docker build -f k8s/images/coordinator.Dockerfile -t nextbuy-coordinator:0.1.0 .
ARG NODE_IMAGE=node:20.20-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# onnxruntime-node's install script would fetch CUDA libraries; its CPU binaries ship in the package.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund

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
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY core ./core
COPY proto ./proto
COPY coordinator ./coordinator
COPY worker ./worker
COPY jobs ./jobs
# The Taobao sample: lets the dev overlay run a real night with no data to provision.
COPY examples ./examples
# Numeric, so the kubelet can check runAsNonRoot.
USER 10001:10001
# The registration server listens on any free port; workers are told the pod IP and port.
EXPOSE 9464
# Kubernetes uses the probes in the manifests; this one serves `docker run` and compose.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.NEXTBUY_METRICS_PORT||9464)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["tini", "--"]
CMD ["node", "bin/nextbuy.js", "--help"]
