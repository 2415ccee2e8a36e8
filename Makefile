# The two commands for a fresh machine: `make run` and `make test`.

BUF_VERSION := 1.75.0
CARGO ?= cargo

.PHONY: run test lint proto-lint fmt clippy deploy-check fuzz

## Builds and starts the server on the embedded default (SQLite under ./data),
## creating a demo tenant and keys on first start.
run:
	$(CARGO) run -p mfa-server -- serve --dev

## Every test: unit, protocol vectors (in Rust and in an independent Python
## implementation), end-to-end over gRPC, and the proto lint.
test: proto-lint deploy-check
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc
	python3 tests/interop/check_vectors.py

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
