# rcache: `make demo` shows it working, `make test` runs every test.
# Both install missing prerequisites first (scripts/prereqs.sh).

CARGO_BIN := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin
CBINDGEN := $(CARGO_BIN)/cbindgen
BUILD := build

.PHONY: all build prereqs demo test test-rust test-c test-python header check-header bench clean

all: build

prereqs:
	@scripts/prereqs.sh

build:
	cargo build --release

## demo: the Python and C demos, on memory:// or on $RCACHE_URL when set.
demo: prereqs build
	@$(MAKE) --no-print-directory -C tests/c demo
	@echo "== Python demo =="
	@python3 examples/demo.py
	@echo
	@echo "== C demo =="
	@$(BUILD)/c/demo

## test: every test: header check, Rust suites, C/C++ (plain and sanitized), Python.
test: prereqs build check-header test-rust test-c test-python

test-rust:
	cargo test --release

test-c:
	tests/with-redis.sh $(MAKE) --no-print-directory -C tests/c check

test-python:
	python3 -m pytest -q tests/python

## header: regenerate include/rcache.h from the Rust sources.
header:
	$(CBINDGEN) --config cbindgen.toml --crate rcache --output include/rcache.h --quiet

## check-header: fail when include/rcache.h is not what the sources generate.
check-header:
	@mkdir -p $(BUILD)
	@$(CBINDGEN) --config cbindgen.toml --crate rcache --output $(BUILD)/rcache.h --quiet
	@diff -u include/rcache.h $(BUILD)/rcache.h || { echo "include/rcache.h is stale: run make header"; exit 1; }
	@echo "include/rcache.h matches the sources"

## bench: benchmark figures against redis-benchmark and redis-py on a private server,
## then Cluster and Sentinel throughput and failover times on private servers.
bench: prereqs build
	bash bench/run.sh
	cargo build --release --example bench_tags --example bench_compute
	tests/with-redis.sh target/release/examples/bench_tags
	target/release/examples/bench_compute
	@mkdir -p $(BUILD)/bench
	$(CC) -O2 -std=c11 -Wall -Wextra -Wpedantic -Werror -Iinclude bench/bench_sessions.c \
	  -Ltarget/release -Wl,-rpath,$(CURDIR)/target/release -lrcache -o $(BUILD)/bench/bench_sessions
	tests/with-redis.sh bash -c '$(BUILD)/bench/bench_sessions $$RCACHE_TEST_REDIS_URL && python3 bench/bench_sessions.py'
	cargo build --release --example bench_cluster
	target/release/examples/bench_cluster

clean:
	cargo clean
	rm -rf $(BUILD)
