# One image for every Flashpods service; the command picks the service:
#   docker run flashpods node apps/api/dist/main.js   (runner, persister, janitor likewise)
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json nx.json tsconfig.base.json ./
COPY libs/contracts/package.json libs/contracts/
COPY libs/config/package.json libs/config/
COPY libs/database/package.json libs/database/
COPY libs/log-format/package.json libs/log-format/
COPY libs/job-stream/package.json libs/job-stream/
COPY apps/api/package.json apps/api/
COPY apps/runner/package.json apps/runner/
COPY apps/persister/package.json apps/persister/
COPY apps/janitor/package.json apps/janitor/
COPY apps/cli/package.json apps/cli/
RUN npm ci --no-audit --no-fund
COPY libs libs
COPY apps apps
RUN NX_DAEMON=false NX_NO_CLOUD=true npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
# NODE_OPTIONS: SERVICE_NODE_FLAGS (libs/config/src/service-node-flags.ts); an API container
# runs with API_NODE_FLAGS instead (docker-compose.yml sets them for the api service).
ENV NODE_ENV=production LOG_DIR=/var/log/flashpods LOG_FORMAT=json NODE_OPTIONS=--max-semi-space-size=2
WORKDIR /app
COPY --from=build /app /app
RUN mkdir -p /var/log/flashpods
CMD ["node", "apps/api/dist/main.js"]
