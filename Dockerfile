# syntax=docker/dockerfile:1
# Build stage: compiles every workspace package. The runtime stage is finished in a later issue.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY apps/relay/package.json apps/relay/
COPY packages/ packages/
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY . .
RUN npx tsc -b && npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app /app
USER node
EXPOSE 9464
ENTRYPOINT ["node", "apps/relay/bin/sluice.js"]
CMD ["run"]
