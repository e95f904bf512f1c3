# The broker image: Node 20, production dependencies, TypeScript run by tsx.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY bin ./bin
COPY proto ./proto
COPY server ./server
USER node
ENV BATON_GRPC_LISTEN=0.0.0.0:50051 BATON_HTTP_LISTEN=0.0.0.0:8080
EXPOSE 50051 8080
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:8080/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "bin/baton.mjs"]
CMD ["serve"]
