# dbops as a container: the compiled bot, its production dependencies, and psql / pg_dump / pg_restore.
#   docker build -t dbops .
#   docker run --rm -v "$PWD/dbops.yaml:/etc/dbops/dbops.yaml:ro" \
#     -e DBOPS_STATE_URL -e KASM_DATABASE_URL -e SLACK_BOT_TOKEN -e SLACK_APP_TOKEN dbops
# Secrets come in as environment variables that dbops.yaml references as ${VAR}; none are baked in.

# ---- build: compile TypeScript, then drop the dev dependencies ---------------------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app

# Dependencies first, so editing the source does not invalidate this layer.
COPY package.json package-lock.json ./
# Exactly the committed lockfile.
RUN npm ci --no-audit --no-fund

COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY commands ./commands
# npm run build: tsc, then esbuild bundles the command (scripts/bundle-cli.mjs).
COPY scripts ./scripts
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# ---- runtime ---------------------------------------------------------------------------------------------
FROM node:20-bookworm-slim

# Debian's PostgreSQL client (major 15) for the backup and restore operations. A pg_dump older than the
# server refuses to dump it; for PostgreSQL 16+ targets install the matching client from apt.postgresql.org.
RUN apt-get update \
  && apt-get install -y --no-install-recommends postgresql-client \
  && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 dbops \
  && useradd --system --uid 10001 --gid dbops --home-dir /app --no-create-home --shell /usr/sbin/nologin dbops

ENV NODE_ENV=production
WORKDIR /app

# Owned by root and only readable by the bot: the running process can not rewrite its own code.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY config/dbops.example.yaml ./config/dbops.example.yaml
# The runbook packs that ship with dbops (YAML, read at start-up from /app/commands/packs).
COPY commands/packs ./commands/packs
# The demo's sample databases (read by dist/src/demo/environment.js), so `dbops demo` works here too.
COPY src/demo/fixtures ./src/demo/fixtures
# Staging's Alembic project (read by dist/src/demo/alembic.js; running it needs alembic, not in this image).
COPY src/demo/alembic ./src/demo/alembic

USER dbops

# 8080: /healthz, /readyz, /metrics (DBOPS_HTTP_PORT); 3000: Slack's Request URL in HTTP mode (SLACK_PORT).
EXPOSE 8080 3000

# Liveness only (/healthz): readiness (/readyz) depends on the state database and the chat connections, which
# an orchestrator should route around, not restart for. Meaningful for `dbops start`, the default command.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.DBOPS_HTTP_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

ENTRYPOINT ["node", "/app/dist/src/cli.js"]
CMD ["start", "--config", "/etc/dbops/dbops.yaml"]
