# Multi-stage build of the four autofloss binaries. cgo is on for mattn/go-sqlite3.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/api ./cmd/worker ./cmd/scheduler ./cmd/autofloss

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app autofloss \
 && mkdir -p /app/var && chown autofloss /app/var
WORKDIR /app
COPY --from=build /out/ /usr/local/bin/
COPY config.yaml /app/config.yaml
USER autofloss
ENV AUTOFLOSS_CONFIG=/app/config.yaml
EXPOSE 8080
# One image, one binary per service: docker-compose.yml picks the command.
CMD ["api"]
