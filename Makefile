# autofloss — the two commands a fresh clone needs are `make run` and `make test`.
GO ?= go

.PHONY: run test services build vet ci clean bench

## run: start the service (api + worker + scheduler) on the embedded defaults: SQLite under ./var,
## Redis on 127.0.0.1:6379 — started under ./var/redis if nothing answers there — in SANDBOX mode:
## loopback fakes of the platforms, a loopback DNS+SMTP world, a demo account whose API key is printed
## with ready-to-paste curl lines. Nothing reaches the internet. (Without the sandbox: `autofloss serve`.)
run:
	@mkdir -p var
	$(GO) run ./cmd/autofloss serve -local-redis -sandbox

## test: the whole suite with the race detector. Redis and PostgreSQL are brought up first
## (installed with apt when missing) by .ci/services.
test:
ifndef SERVICES_CHECKED
	@./.ci/services
endif
	$(GO) test -race -count=1 ./...

services:
	@./.ci/services

## build: the four binaries into ./bin
build:
	$(GO) build -o bin/ ./cmd/api ./cmd/worker ./cmd/scheduler ./cmd/autofloss

## bench: the end-to-end benchmarks of BENCHMARKS.md (floss of 10k/100k/1M contacts, rate-limited floss,
## scheduler tick over 100k connections); prints each figure with its command and the machine. Takes
## ~15 minutes on 2 cores; not part of `make test`. BENCH_FLAGS narrows it, e.g. BENCH_FLAGS='-only rate'.
bench:
	$(GO) run ./cmd/autofloss bench $(BENCH_FLAGS)

vet:
	$(GO) vet ./...

## ci: what CI runs (.ci/run): services, vet, test
ci:
	./.ci/run

clean:
	rm -rf bin
