# streamproxy/Dockerfile as it was before issue 19 (commit 9b15e59): the test must refuse it.
# streamproxy with runtimes for the official MCP servers: Node 22 (npm servers) and Python with uv (PyPI servers).
# Build from the repository root: docker build -f streamproxy/Dockerfile -t mcp-streamproxy .
# Pick the server with the command after "--", e.g.
#   docker run mcp-streamproxy --listen :8080 -- mcp-server-memory
FROM golang:1.25-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY streamproxy ./streamproxy
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/streamproxy ./streamproxy

FROM node:22-bookworm-slim
# Python and uv for PyPI servers (mcp-server-fetch, mcp-server-time), run with uvx.
RUN apt-get update && apt-get install -y --no-install-recommends python3 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && npm install -g --no-fund --no-audit \
       @modelcontextprotocol/server-everything@2026.8.31 \
       @modelcontextprotocol/server-memory@2026.8.31 \
       @modelcontextprotocol/server-filesystem@2026.8.31 \
       @modelcontextprotocol/server-sequential-thinking@2026.8.31 \
    && npm cache clean --force
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /uvx /usr/local/bin/
COPY --from=build /out/streamproxy /usr/local/bin/streamproxy
# Each session's child runs as this unprivileged user; the filesystem server is confined to /data.
RUN useradd --create-home --uid 10001 mcp && mkdir -p /data && chown mcp /data
USER mcp
ENV UV_CACHE_DIR=/home/mcp/.cache/uv MEMORY_FILE_PATH=/data/memory.json
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["streamproxy", "--log-format", "json"]
CMD ["--listen", ":8080", "--", "mcp-server-everything"]
