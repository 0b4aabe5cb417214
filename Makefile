# The two commands a newcomer needs. Both set up what is missing on a fresh machine (the pinned
# Python environment in .venv for moto; crates from crates.io).

.PHONY: demo test build lint bench measure check-infra

demo: build
	.venv/bin/python infra/local/demo.py

build:
	infra/local/venv.sh
	cargo build --bins --workspace

test: lint
	infra/local/venv.sh
	infra/local/with-moto.sh infra/local/run-tests.sh
	infra/check.sh

check-infra:
	infra/check.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench:
	cargo bench --bench accept

measure:
	cargo build --release --bins --example hello_lambda
	.venv/bin/python infra/local/measure.py
