# Builds app but the final stage copies a binary that no stage made.
FROM golang:1.26-alpine AS build
WORKDIR /src
COPY . .
RUN CGO_ENABLED=0 go build -o /out/app ./cmd/app

FROM alpine:3.22
COPY --from=build /out/server /usr/local/bin/server
