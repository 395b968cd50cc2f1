# Built in two stages: the first compiles (npm run build: dist/), the second runs the compiled
# server with production packages only (no TypeScript, no esbuild; werift's patch is applied by
# npm ci at image build time).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci
COPY . .
RUN npm run build

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
ENV PORT=8080 RTC_PORT_RANGE=40000-40199
EXPOSE 8080 40000-40199/udp
CMD ["node", "--enable-source-maps", "dist/server.js"]
