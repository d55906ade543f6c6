# Files mounted into a RUN line bypass COPY: the test cannot lay them out, so it refuses rather than pass.
FROM golang:1.26-alpine AS build
WORKDIR /src
RUN --mount=type=bind,target=. go build -o /out/app ./cmd/app
