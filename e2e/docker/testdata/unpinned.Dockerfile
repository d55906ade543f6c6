# A Go image without a version: what it builds with changes under it.
FROM golang:alpine AS build
WORKDIR /src
COPY . .
RUN go build ./cmd/app
