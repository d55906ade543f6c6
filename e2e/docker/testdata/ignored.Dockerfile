# Copies the whole context, but its .dockerignore (ignored.Dockerfile.dockerignore) leaves lib out.
FROM golang:1.26-alpine AS build
WORKDIR /src
COPY . .
RUN CGO_ENABLED=0 go build -o /out/app ./cmd/app
