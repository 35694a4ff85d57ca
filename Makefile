# rcache: `make demo` shows it working, `make test` runs every test.
# Both install missing prerequisites first (scripts/prereqs.sh).

CARGO_BIN := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin
CBINDGEN := $(CARGO_BIN)/cbindgen
BUILD := build

.PHONY: all build prereqs demo test lint test-rust test-c test-python header check-header bench bench-near clean wheel sdist test-runtimes test-node test-pypy test-luajit bench-runtimes

all: build

prereqs:
	@scripts/prereqs.sh

build:
	cargo build --release
	@ln -sf librcache.so target/release/$(SONAME)

## demo: the Python, C and C++ demos, on memory:// or on $RCACHE_URL when set.
demo: prereqs build
	@$(MAKE) --no-print-directory -C tests/c demo
	@echo "== Python demo =="
	@python3 examples/demo.py
	@echo
	@echo "== web2py application example (cache.redis, sessions) =="
	@python3 examples/web2py_app/run.py
	@echo
	@echo "== C demo =="
	@$(BUILD)/c/demo
	@echo
	@echo "== C++ demo =="
	@$(BUILD)/c/demo_cpp

## test: every test: header check, formatting and lints, Rust suites, C/C++ (plain and sanitized), Python.
test: prereqs build check-header lint test-rust test-c test-python test-install test-runtimes

## lint: rustfmt's layout (rustfmt.toml) and clippy with every warning an error.
lint:
	cargo fmt --check
	cargo clippy --release --all-targets -- -D warnings

test-rust:
	cargo test --release

test-c:
	tests/with-redis.sh $(MAKE) --no-print-directory -C tests/c check

test-python:
	python3 -m pytest -q tests/python

## test-runtimes: Node.js (koffi), PyPy and LuaJIT load librcache.so with their own FFI; each one's tests on
## memory:// and a private redis-server.
test-runtimes: test-node test-pypy test-luajit

test-node:
	cd bindings/node && ../../tests/with-redis.sh node --test test/

test-pypy:
	tests/pypy.sh

test-luajit:
	tests/with-redis.sh luajit bindings/luajit/test.lua

## test-install: make install into a temporary prefix, build the demos against it with pkg-config, run them.
test-install:
	tests/test_install.sh

## wheel: the Python package as a manylinux wheel with librcache.so (stripped) inside, in $(WHEEL_DIR);
## the library's debug info beside it as librcache.so.debug. auditwheel checks and tags it.
WHEEL_DIR ?= $(BUILD)/wheel
wheel: prereqs
	@mkdir -p $(WHEEL_DIR)
	@rm -rf $(WHEEL_DIR)/rcache-*.whl $(WHEEL_DIR)/platform
	RCACHE_DEBUG_DIR=$(abspath $(WHEEL_DIR)) python3 -m pip wheel --quiet --no-deps --no-build-isolation \
	  --wheel-dir $(WHEEL_DIR)/platform ./bindings/python
	PATH="$$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$$PATH" \
	  python3 -m auditwheel repair --wheel-dir $(WHEEL_DIR) $(WHEEL_DIR)/platform/rcache-*.whl
	@rm -rf $(WHEEL_DIR)/platform
	@ls -l $(WHEEL_DIR)/rcache-*.whl

## sdist: the Python package's source distribution, the crate's sources inside, in $(SDIST_DIR).
SDIST_DIR ?= $(BUILD)/sdist
sdist: prereqs
	@mkdir -p $(SDIST_DIR)
	@rm -f $(SDIST_DIR)/rcache-*.tar.gz
	cd bindings/python && python3 setup.py --quiet sdist --dist-dir $(abspath $(SDIST_DIR))
	@rm -rf bindings/python/rcache.egg-info
	@ls -l $(SDIST_DIR)/rcache-*.tar.gz

## header: regenerate include/rcache.h from the Rust sources.
header:
	$(CBINDGEN) --config cbindgen.toml --crate rcache --output include/rcache.h --quiet

## check-header: fail when include/rcache.h is not what the sources generate.
check-header:
	@mkdir -p $(BUILD)
	@$(CBINDGEN) --config cbindgen.toml --crate rcache --output $(BUILD)/rcache.h --quiet
	@diff -u include/rcache.h $(BUILD)/rcache.h || { echo "include/rcache.h is stale: run make header"; exit 1; }
	@echo "include/rcache.h matches the sources"

## bench: every client on one private server in one run (report and chart copied to docs/), then the tags,
## compute, fail-safe and session benchmarks, then Cluster and Sentinel throughput and failover times on private servers.
bench: prereqs build
	cargo build --release --example bench_topologies
	bash bench/run.sh
	@mkdir -p docs
	cp $(BUILD)/bench/report.md docs/benchmark.md
	@if [ -f $(BUILD)/bench/chart.png ]; then cp $(BUILD)/bench/chart.png docs/benchmark.png && echo "cp $(BUILD)/bench/chart.png docs/benchmark.png"; \
	  else echo "bench: no chart was drawn (see build/bench/report.md); docs/benchmark.png left as it was"; fi
	cargo build --release --example bench_tags --example bench_compute --example bench_failsafe
	tests/with-redis.sh target/release/examples/bench_tags
	target/release/examples/bench_compute
	target/release/examples/bench_failsafe
	cargo build --release --example bench_wake
	target/release/examples/bench_wake
	@mkdir -p $(BUILD)/bench
	$(CC) -O2 -std=c11 -Wall -Wextra -Wpedantic -Werror -Iinclude bench/bench_sessions.c \
	  -Ltarget/release -Wl,-rpath,$(CURDIR)/target/release -lrcache -o $(BUILD)/bench/bench_sessions
	tests/with-redis.sh bash -c '$(BUILD)/bench/bench_sessions $$RCACHE_TEST_REDIS_URL && python3 bench/bench_sessions.py'
	cargo build --release --example bench_cluster
	target/release/examples/bench_cluster

## bench-near: near-cache hits against plain Redis gets, from 1 and 8 C and Python threads, and against valkey-glide-sync's client-side cache, on a private standalone server, Sentinel group and Cluster in interleaved rounds, with each figure's ratio to standalone (make bench runs them too, in bench/run.sh).
bench-near: prereqs build
	@mkdir -p $(BUILD)/bench
	$(CC) -O2 -std=c11 -Wall -Wextra -Wpedantic -Werror -pthread -Iinclude bench/bench_near.c \
	  -Ltarget/release -Wl,-rpath,$(CURDIR)/target/release -lrcache -o $(BUILD)/bench/bench_near
	cargo build --release --example bench_topologies
	target/release/examples/bench_topologies python3 bench/bench_near_topologies.py --bench-near $(BUILD)/bench/bench_near

## bench-runtimes: get/set ops/s from one Node.js, PyPy and LuaJIT thread, rcache beside each runtime's usual
## Redis client (ioredis, redis-py, redis-lua), on one private server in one run; report in build/bench/runtimes.md.
bench-runtimes: prereqs build
	bench/runtimes.sh

# Installation: `make install [PREFIX=/usr/local] [DESTDIR=...]`. The shared
# library is librcache.so.<ABI>.<version> with the soname librcache.so.<ABI>
# (RCACHE_ABI_VERSION, raised on every incompatible change; set by build.rs),
# and the links librcache.so.<ABI> and librcache.so; beside it librcache.a, the
# headers rcache.h and rcache.hpp, and pkgconfig/rcache.pc. Versions are read
# from the generated header, which make check-header keeps current.
header_define = $(shell sed -n 's/^\#define $(1) \([0-9][0-9]*\)$$/\1/p' include/rcache.h)
ABI := $(call header_define,RCACHE_ABI_VERSION)
VERSION := $(call header_define,RCACHE_VERSION_MAJOR).$(call header_define,RCACHE_VERSION_MINOR).$(call header_define,RCACHE_VERSION_PATCH)
SONAME := librcache.so.$(ABI)
REALNAME := $(SONAME).$(VERSION)
PREFIX ?= /usr/local
libdir ?= $(PREFIX)/lib
includedir ?= $(PREFIX)/include
pkgconfigdir ?= $(libdir)/pkgconfig
# rcache.pc names directories under the prefix relative to ${prefix}.
pc_dir = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

.PHONY: install uninstall test-install

## install: the libraries, headers and rcache.pc under $(DESTDIR)$(PREFIX).
# Builds first when cargo is on the PATH (sudo's PATH usually lacks it: `make && sudo make install`).
install: $(if $(shell command -v cargo),build)
	@test -f target/release/librcache.so -a -f target/release/librcache.a || { echo "no library in target/release: run make first" >&2; exit 1; }
	install -d $(DESTDIR)$(libdir) $(DESTDIR)$(includedir) $(DESTDIR)$(pkgconfigdir)
	install -m 755 target/release/librcache.so $(DESTDIR)$(libdir)/$(REALNAME)
	ln -sfn $(REALNAME) $(DESTDIR)$(libdir)/$(SONAME)
	ln -sfn $(SONAME) $(DESTDIR)$(libdir)/librcache.so
	install -m 644 target/release/librcache.a $(DESTDIR)$(libdir)/librcache.a
	install -m 644 include/rcache.h bindings/cpp/rcache.hpp $(DESTDIR)$(includedir)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(call pc_dir,$(libdir))|' \
	  -e 's|@INCLUDEDIR@|$(call pc_dir,$(includedir))|' -e 's|@VERSION@|$(VERSION)|' \
	  rcache.pc.in > $(DESTDIR)$(pkgconfigdir)/rcache.pc
	chmod 644 $(DESTDIR)$(pkgconfigdir)/rcache.pc

## uninstall: remove what make install put under $(DESTDIR)$(PREFIX).
uninstall:
	rm -f $(DESTDIR)$(libdir)/$(REALNAME) $(DESTDIR)$(libdir)/$(SONAME) $(DESTDIR)$(libdir)/librcache.so \
	  $(DESTDIR)$(libdir)/librcache.a $(DESTDIR)$(includedir)/rcache.h $(DESTDIR)$(includedir)/rcache.hpp \
	  $(DESTDIR)$(pkgconfigdir)/rcache.pc

clean:
	cargo clean
	rm -rf $(BUILD)
