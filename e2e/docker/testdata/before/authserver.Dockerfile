# authserver/Dockerfile as it was before issue 19 (commit 9b15e59): the test must refuse it.
# The authorization server. Build from the repository root: docker build -f authserver/Dockerfile -t mcp-authserver .
FROM golang:1.25-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY authserver ./authserver
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/authserver ./authserver

FROM alpine:3.22
RUN adduser -D -u 10001 authserver && mkdir /data && chown authserver /data
COPY --from=build /out/authserver /usr/local/bin/authserver
USER authserver
WORKDIR /data
ENV AUTHSERVER_LISTEN=:9000 AUTHSERVER_DATA_FILE=/data/authserver.jsonl AUTHSERVER_LOG_FORMAT=json
EXPOSE 9000
HEALTHCHECK --interval=30s --timeout=3s CMD wget -qO- http://127.0.0.1:9000/health || exit 1
ENTRYPOINT ["authserver"]
