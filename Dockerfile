FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --omit=dev
COPY . .
ENV PORT=8080 RTC_PORT_RANGE=40000-40199
EXPOSE 8080 40000-40199/udp
CMD ["npm", "start"]
