# syntax=docker/dockerfile:1
# The Users API image: built with every dependency in one stage, run from another with production dependencies only,
# as the unprivileged user node, with an embedded store in /data unless DATABASE_URL names a PostgreSQL server.

ARG NODE_IMAGE=node:20-slim

# A compiler for better-sqlite3, which builds its addon from source when no prebuilt binary fits the platform.
FROM ${NODE_IMAGE} AS toolchain
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The typed client is a workspace of the package (the server signs webhooks with its code): its manifest comes first.
COPY package.json package-lock.json ./
COPY clients/typescript/package.json ./clients/typescript/

# The server's TypeScript and the Console, built into dist/. --ignore-scripts: the package's own prepare script
# (npm run build) would run before the sources are here; the two dependencies with install scripts are rebuilt alone.
FROM toolchain AS build
RUN npm ci --ignore-scripts \
  && npm rebuild better-sqlite3 esbuild
COPY tsconfig.json tsconfig.build.json ./
COPY clients/typescript ./clients/typescript
COPY src ./src
COPY scripts/bundle.mjs ./scripts/
COPY console ./console
RUN npm run build

# Production dependencies only: without --ignore-scripts, prepare would run a build with no vite or tsc installed.
FROM toolchain AS production-dependencies
RUN npm ci --omit=dev --ignore-scripts \
  && npm rebuild better-sqlite3

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATABASE_URL=/data/users.db
WORKDIR /app
# Owned by root: the service cannot change its own code or dependencies.
COPY --from=production-dependencies /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# node_modules/@users-api/client links to the workspace: its manifest and build.
COPY --from=build /app/clients/typescript/package.json /app/clients/typescript/openapi.json ./clients/typescript/
COPY --from=build /app/clients/typescript/dist ./clients/typescript/dist
COPY package.json ./
# The embedded store and its secret files (pii.keys, user-token.secret) live here, owner-only.
RUN mkdir -p /data && chown node:node /data && chmod 700 /data
VOLUME ["/data"]
USER node
EXPOSE 8080
# /healthz is never load-shed, so a busy instance is not taken for a dead one; node:20-slim has no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Node itself as PID 1, so SIGTERM reaches the server's graceful shutdown (npm start would also build first).
ENTRYPOINT ["node", "dist/main.js"]
CMD ["serve"]
