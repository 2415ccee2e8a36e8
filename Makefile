# The two commands for a fresh machine: `make run` and `make test`.

BUF_VERSION := 1.75.0
CARGO ?= cargo

.PHONY: run test bench lint proto-lint fmt clippy deploy-check demo browser-test

## Builds and starts the server on the embedded default (SQLite under ./data),
## creating a demo tenant and keys on first start.
run:
	$(CARGO) run -p mfa-server -- serve --dev

## Every test: unit, protocol vectors (in Rust and in an independent Python
## implementation), end-to-end over gRPC, the proto lint, the authenticator in
## a terminal and the demo portal in a browser.
test: proto-lint deploy-check browser-test
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc
	python3 tests/interop/check_vectors.py

## Measures the release build: starts mfa-server on a fresh SQLite file (or
## BENCH_ARGS="--db postgres://…"), drives it with the SDK-based load generator,
## prints a table and writes JSON under target/bench/. More: BENCH_ARGS="--help".
BENCH_ARGS ?=
bench:
	$(CARGO) build --release -p mfa-server -p mfa-bench
	target/release/mfa-bench $(BENCH_ARGS)

## Checks deploy/: the alert rules and their unit tests, and every PromQL
## expression of the Grafana dashboard, with promtool (installed if missing).
deploy-check:
	bash deploy/check.sh

## Lints the .proto files with buf's STANDARD and COMMENTS rules.
proto-lint:
	cd proto && npx --yes @bufbuild/buf@$(BUF_VERSION) lint

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

lint: fmt clippy proto-lint

## Starts mfa-server (fresh dev tenant) and the demo portal on loopback, and
## prints what to open in the browser and what to run as the phone.
demo:
	$(CARGO) build -p mfa-server -p demo-portal -p mfa-authenticator
	bash demo-portal/demo.sh

## The demo portal in headless Chromium (Debian's `chromium`, driven by
## playwright-core): enrollment by the rendered QR code, approve, deny, expiry.
## Screenshots go to target/browser-screenshots/.
browser-test:
	$(CARGO) build -p mfa-server -p demo-portal -p mfa-authenticator
	cd tests/browser && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm test
