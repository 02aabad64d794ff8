# syntax=docker/dockerfile:1.7
# A CPU worker (dev overlay, and clusters without GPUs): scores with onnxruntime-node, trains with
# tfjs + the WASM backend. Build from the repository root:
#   docker build -f k8s/images/worker-cpu.Dockerfile -t nextbuy-worker-cpu:0.1.0 .
ARG NODE_IMAGE=node:20.20-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 nextbuy \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nextbuy
WORKDIR /app
ENV NODE_ENV=production \
    NEXTBUY_WORKER_PORT=7071 \
    NEXTBUY_METRICS_PORT=9464
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY core ./core
COPY proto ./proto
COPY worker ./worker
USER 10001:10001
EXPOSE 7071 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.NEXTBUY_METRICS_PORT||9464)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The launcher sets the whole command line as `args` (coordinator/cluster/k8s/objects.ts); tini stays PID 1.
ENTRYPOINT ["tini", "--"]
CMD ["node", "--import", "tsx", "worker/main.ts", "--host", "0.0.0.0", "--port", "7071"]
