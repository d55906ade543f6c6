# Lays out everything app needs: the Go version from an ARG, a path from ENV, ADD of a local directory (it copies like
# COPY), a stage built on another, and the binary handed to the final stage.
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-alpine AS build
ENV OUT=/out
WORKDIR /src
COPY go.mod ./
RUN go mod download
COPY cmd ./cmd
ADD lib/ ./lib/
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o ${OUT}/app ./cmd/app

FROM build AS vet
RUN go vet ./...

FROM alpine:3.22
COPY --from=build /out/app /usr/local/bin/app
USER 10001
