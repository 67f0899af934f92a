# syntax=docker/dockerfile:1
# The Sluice relay image. docker build -t sluice . ; how to run it: docs/deployment.md.
# test/dockerfile.test.ts runs these build steps without Docker (none on the CI machine) and starts
# the final stage's files as an unprivileged user, as PID 1.

ARG NODE_IMAGE=node:20-bookworm-slim

# Package manifests only: `npm ci` below is rebuilt when a dependency changes, not on every source
# edit (COPY --from is cached by the content it copies, and this stage's output stays the same).
FROM ${NODE_IMAGE} AS manifests
WORKDIR /app
COPY . .
RUN find . -type f ! -name package.json ! -name package-lock.json -delete \
 && find . -mindepth 1 -type d -empty -delete

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY --from=manifests /app ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY . .
# Compile, then drop development dependencies, optional ones (the Postgres binaries from npm that
# only `npm start`'s embedded mode runs: ~60 MB), TypeScript sources and the test kit.
RUN npm run build \
 && npm prune --omit=dev --omit=optional --no-audit --no-fund \
 && rm -rf packages/*/src apps/*/src packages/testkit node_modules/@sluice/testkit \
 && find packages apps -name '*.tsbuildinfo' -delete \
 && find node_modules -mindepth 1 -type d -empty -delete

# What runs: compiled workspaces, production node_modules, Sluice's migrations. Owned by root and
# read-only to the relay's user.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/packages ./packages
COPY --from=build /app/apps ./apps
COPY --from=build /app/drizzle ./drizzle
# The image's `node` user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 9464
# node, not curl (slim images have none); GET /livez on SLUICE_HTTP_HOST/SLUICE_HTTP_PORT.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "apps/relay/bin/healthcheck.js"]
# node itself is PID 1, no shell in between: it receives SIGTERM and drains (30 s at most).
ENTRYPOINT ["node", "apps/relay/bin/sluice.js"]
CMD ["run"]
