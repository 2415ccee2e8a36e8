# The two commands for a fresh machine: `make run` and `make test`.

BUF_VERSION := 1.75.0
CARGO ?= cargo

.PHONY: run test test-postgres bench lint proto-lint proto-breaking fmt clippy deploy-check demo browser-test fuzz soak

## Builds and starts the server on the embedded default (SQLite under ./data),
## creating a demo tenant and keys on first start.
run:
	$(CARGO) run -p mfa-server -- serve --dev

## Every test: unit, protocol vectors (in Rust and in an independent Python
## implementation), end-to-end over gRPC (on SQLite, then on PostgreSQL), the
## proto lint, the authenticator in a terminal and the demo portal in a browser.
test: proto-lint proto-breaking deploy-check browser-test
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc
	python3 tests/interop/check_vectors.py
	$(CARGO) build -p mfa-server -p mfa-bench
	target/debug/mfa-soak --server target/debug/mfa-server --duration 30s
	$(MAKE) test-postgres

## The end-to-end suite again on PostgreSQL (a fresh database per test), when
## PostgreSQL answers at TEST_POSTGRES_URL (default 127.0.0.1:5432, user
## postgres); otherwise it says that it skipped and why, except under CI=true,
## where it fails. (tests/tests/store.rs and replicas.rs, which need PostgreSQL
## whatever the backend, run with the workspace tests.)
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/postgres
export TEST_POSTGRES_URL
test-postgres:
	@if bash tests/postgres-reachable.sh "$(TEST_POSTGRES_URL)"; then \
	  TEST_DATABASE=postgres $(CARGO) test --workspace --test e2e; \
	elif [ "$$CI" = true ]; then \
	  echo "FAILED: PostgreSQL at $(TEST_POSTGRES_URL) is not reachable, and CI=true requires the PostgreSQL suite" >&2; exit 1; \
	else \
	  echo "SKIPPED the PostgreSQL suite: PostgreSQL at $(TEST_POSTGRES_URL) is not reachable (start it, or set TEST_POSTGRES_URL)"; \
	fi

## Measures the release build: starts mfa-server on a fresh SQLite file, drives
## it with the SDK-based load generator, prints a table and writes JSON under
## target/bench/; then the same on PostgreSQL at BENCH_POSTGRES (a database
## mfa_bench made anew; two replicas), compared with the SQLite run, if it
## answers. BENCH_ARGS="--db postgres://…" runs that database alone. More:
## BENCH_ARGS="--help".
BENCH_ARGS ?=
BENCH_POSTGRES ?= postgres://postgres@127.0.0.1:5432
bench:
	$(CARGO) build --release -p mfa-server -p mfa-bench
	target/release/mfa-bench $(BENCH_ARGS)
	@case "$(BENCH_ARGS)" in *--db*) exit 0;; esac; \
	if bash tests/postgres-reachable.sh "$(BENCH_POSTGRES)/postgres"; then \
	  psql "$(BENCH_POSTGRES)/postgres" -q -c "DROP DATABASE IF EXISTS mfa_bench WITH (FORCE)" -c "CREATE DATABASE mfa_bench" && \
	  target/release/mfa-bench $(BENCH_ARGS) --db "$(BENCH_POSTGRES)/mfa_bench"; \
	else \
	  echo "SKIPPED the PostgreSQL run: nothing answers at $(BENCH_POSTGRES) (start it, or set BENCH_POSTGRES)"; \
	fi

## Runs sign-ins against the release server for SOAK_DURATION with short
## lifetimes and retention, and fails unless its memory, open file descriptors
## and SQLite file stay flat once expired data is swept (and its WAL is cut
## back). A 30 s
## run on the debug build is part of `make test`. See docs/security.md.
SOAK_DURATION ?= 10m
soak:
	$(CARGO) build --release -p mfa-server -p mfa-bench
	target/release/mfa-soak --server target/release/mfa-server --duration $(SOAK_DURATION)

## Checks deploy/: the alert rules and their unit tests, and every PromQL
## expression of the Grafana dashboard, with promtool (installed if missing);
## then the deployment recipes: the Dockerfile with hadolint, the Kubernetes
## manifests with kubernetes-validate, compose.yaml with the Compose schema,
## the systemd unit with systemd-analyze, and all of them against each other
## and the server's configuration (deploy/check-recipes.sh, which installs
## its tools). The image itself is run by tests/tests/image_like.rs.
deploy-check:
	bash deploy/check.sh
	bash deploy/check-recipes.sh

## Lints the .proto files with buf's STANDARD and COMMENTS rules.
proto-lint:
	cd proto && npx --yes @bufbuild/buf@$(BUF_VERSION) lint

## Checks with `buf breaking` (FILE rules: wire and generated-code
## compatibility) that the .proto files break nothing of the last release,
## whose files are kept under proto/released/ (see RELEASING.md).
PROTO_RELEASED := $(shell ls -d proto/released/v* | sort -V | tail -n 1)
proto-breaking:
	cd proto && npx --yes @bufbuild/buf@$(BUF_VERSION) breaking --against $(PROTO_RELEASED:proto/%=%)

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

## The demo portal and the OpenID provider (with an Authlib relying party,
## tests/oidc-rp, installed into target/oidc-rp-venv) in headless Chromium
## (Debian's `chromium`, driven by playwright-core): enrollment by the
## rendered QR code, approve, deny, fraud, expiry. Screenshots go to
## target/browser-screenshots/.
browser-test:
	$(CARGO) build -p mfa-server -p demo-portal -p mfa-authenticator
	bash tests/oidc-rp/ensure-venv.sh
	cd tests/browser && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm test
## Fuzzes each target for FUZZ_SECONDS with cargo-fuzz and libFuzzer
## (installed if missing). Stable Rust: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use
## the sanitizer-coverage flags; no sanitizer (safe Rust). New inputs go to
## target/fuzz-corpus/, crashes to fuzz/artifacts/. See docs/security.md.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := enrollment_uri signed_bytes push_payload request_decoding
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	for target in $(FUZZ_TARGETS); do \
		mkdir -p target/fuzz-corpus/$$target && \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --features libfuzzer --sanitizer none $$target \
			target/fuzz-corpus/$$target fuzz/seeds/$$target -- -max_total_time=$(FUZZ_SECONDS) \
			|| exit 1; \
	done
