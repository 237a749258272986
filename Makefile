# SPDX-License-Identifier: MIT
# ctxvar -- one entry point. `make help` lists every target.
#
#   make            libctxvar.a and libctxvar.so* in build/
#   make test       the whole suite (installs what it needs from Debian)
#   make check      the same as make test
#   make report     benchmarks every backend against CPython, writes results/
#   make install    PREFIX=/usr/local LIBDIR=$(PREFIX)/lib INCLUDEDIR=... DESTDIR=
#   make uninstall  the same variables
#   make clean      build outputs only
#
# Other targets: deps, unit, valgrind, clang-check, fuzz, prop, tsan,
# coverage, bench-instr, mutate, model (see the fragments included at the bottom).

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR   ?= $(LIBDIR)/cmake/ctxvar
CC       ?= cc
CXX      ?= c++
BUILD    ?= build
OPT      ?= -O2
WARN     := -std=c11 -Wall -Wextra -Wpedantic -Werror
CFLAGS   ?= $(OPT) -g
LDLIBS   := -lpthread

# ---------------------------------------------------------------------------
# Version and ABI: every number comes from the file VERSION (docs/design/
# abi.md). SONAME libctxvar.so.<major>; every symbol in the node
# CTXVAR_<major>.<minor>, so a binary built against one minor version does
# not load against another.
# ---------------------------------------------------------------------------
VERSION       := $(shell cat VERSION)
VERSION_MAJOR := $(word 1,$(subst ., ,$(VERSION)))
VERSION_MINOR := $(word 2,$(subst ., ,$(VERSION)))
VERSION_PATCH := $(word 3,$(subst ., ,$(VERSION)))
ABI           := $(VERSION_MAJOR)
SYMVER_NODE   := CTXVAR_$(VERSION_MAJOR).$(VERSION_MINOR)
SONAME        := libctxvar.so.$(ABI)

# The TLS of the library (docs/design/tls.md). libctxvar.so: the default
# model, so that it can be dlopened into any process, with TLS descriptors
# where the compiler has them (gcc on x86-64; clang 14 has not), which cost
# a few instructions while the library's TLS is static. With descriptors,
# no vector registers in the library's code: this glibc's dynamic
# descriptor path (a dlopened library) does not preserve them (glibc bug
# 31372, fixed in 2.40). libctxvar.a, for executables: initial-exec, which
# the linker makes a plain %fs-relative access.
TLS_DIALECT ?= $(shell $(CC) -fPIC -mtls-dialect=gnu2 -mgeneral-regs-only -x c -c /dev/null \
                 -o /dev/null 2>/dev/null && echo -mtls-dialect=gnu2 -mgeneral-regs-only)
TLS_STATIC  ?= -ftls-model=initial-exec
ALL_CFLAGS := $(WARN) $(CFLAGS) -fPIC -D_GNU_SOURCE

LIB_SRC  := $(wildcard core/*.c) $(wildcard maps/*.c)
LIB_HDR  := $(wildcard core/*.h) $(wildcard maps/*.h)
LIB_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC))
LIB_A_OBJ := $(patsubst %.c,$(BUILD)/static/%.o,$(LIB_SRC))
LIB_A    := $(BUILD)/libctxvar.a
LIB_SO   := $(BUILD)/libctxvar.so
LIB_SO_REAL := $(BUILD)/libctxvar.so.$(VERSION)
LIB_SO_ABI  := $(BUILD)/$(SONAME)
LIB_MAP  := $(BUILD)/ctxvar.map

.PHONY: all test check test-run report deps deps-test deps-report install uninstall clean unit valgrind clang-check help

all: $(LIB_A) $(LIB_SO)

$(BUILD)/%.o: %.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(TLS_DIALECT) -DCV_BUILDING_SHARED -fvisibility=hidden -c $< -o $@

$(BUILD)/static/%.o: %.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(TLS_STATIC) -DCV_BUILDING_SHARED -fvisibility=hidden -c $< -o $@

$(LIB_A): $(LIB_A_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(LIB_MAP): core/ctxvar.map.in VERSION
	@mkdir -p $(dir $@)
	sed -e 's/@NODE@/$(SYMVER_NODE)/' core/ctxvar.map.in > $@

$(LIB_SO_REAL): $(LIB_OBJ) $(LIB_MAP)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=$(LIB_MAP) \
	  -Wl,--no-undefined -Wl,-z,relro -Wl,-z,now -o $@ $(LIB_OBJ) $(LDLIBS)

$(LIB_SO_ABI): $(LIB_SO_REAL)
	ln -sf $(notdir $<) $@

$(LIB_SO): $(LIB_SO_ABI)
	ln -sf $(notdir $<) $@

# ---------------------------------------------------------------------------
# Dependencies: installed from Debian's packages when missing (as root).
# ---------------------------------------------------------------------------
DEPS_TEST   := gcc g++ make clang libclang-rt-14-dev llvm libcmocka-dev \
               librapidcheck-dev libbenchmark-dev valgrind libpython3.11-dev python3 \
               binutils pkg-config cmake meson ninja-build git libuv1-dev wrk zip unzip spin
DEPS_REPORT := gcc g++ make binutils libbenchmark-dev hyperfine gnuplot-nox \
               libpython3.11-dev python3 valgrind libuv1-dev pkg-config wrk
DEPS_EXTRA  := lcov afl++

define apt_ensure
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null || \
	    { echo "deps: could not install$$missing from Debian: run 'make deps' as root"; exit 1; }; \
	fi
endef

deps-test:
	$(call apt_ensure,$(DEPS_TEST))
deps-report:
	$(call apt_ensure,$(DEPS_REPORT))
deps-extra:
	$(call apt_ensure,$(DEPS_EXTRA))
deps: deps-test deps-report deps-extra

# Each target that runs a tool installs its package first (as root, or
# with sudo), or fails naming `make deps`: a missing tool is never a
# silent success.
.PHONY: deps-extra deps-valgrind deps-clang deps-lcov deps-afl deps-packaging
deps-valgrind:
	$(call apt_ensure,valgrind)
deps-clang:
	$(call apt_ensure,clang libclang-rt-14-dev llvm)
deps-lcov:
	$(call apt_ensure,lcov)
deps-afl:
	$(call apt_ensure,afl++ clang)
deps-packaging:
	$(call apt_ensure,pkg-config cmake meson ninja-build binutils)
valgrind: deps-valgrind
unit canary prop prop-canary prop-cpython stress fuzz-replay bench-smoke abi examples \
  docs-check: deps-test
clang-check tsan asan-stress fuzz fuzz-build fuzz-short fuzz-canary: deps-clang
coverage coverage-build: deps-lcov
fuzz-afl: deps-afl

# ---------------------------------------------------------------------------
# The two commands. Each runs in two phases: install what is missing, then a
# fresh make, so that flags computed when a Makefile is read (python3.11-config,
# say) see the packages the first phase installed. The fragments add their
# steps to test-run and report-run.
# ---------------------------------------------------------------------------
test:
	@$(MAKE) --no-print-directory deps-test
	@$(MAKE) --no-print-directory test-run
	@echo "make test: all steps passed"

report:
	@$(MAKE) --no-print-directory deps-report
	@$(MAKE) --no-print-directory report-run

# ---------------------------------------------------------------------------
# install / uninstall: DESTDIR, PREFIX, LIBDIR, INCLUDEDIR (and PKGCONFIGDIR,
# CMAKEDIR). The .pc and the CMake package are written from VERSION.
# ---------------------------------------------------------------------------
PC_SED := -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
          -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|'
CM_SED := -e 's|@CTXVAR_VERSION@|$(VERSION)|g' -e 's|@CTXVAR_SONAME@|$(SONAME)|g' \
          -e 's|@CTXVAR_REL_PREFIX@|$(shell realpath -m --relative-to=$(CMAKEDIR) $(PREFIX))|g' \
          -e 's|@CTXVAR_REL_LIBDIR@|$(shell realpath -m --relative-to=$(PREFIX) $(LIBDIR))|g' \
          -e 's|@CTXVAR_REL_INCLUDEDIR@|$(shell realpath -m --relative-to=$(PREFIX) $(INCLUDEDIR))|g' \
          -e 's|@CTXVAR_SIZEOF_VOID_P@|$(shell echo __SIZEOF_POINTER__ | $(CC) -E -P -x c - | tr -d " ")|g'

install: all
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	  $(DESTDIR)$(CMAKEDIR)
	install -m 644 core/ctxvar.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(LIB_SO_REAL) $(DESTDIR)$(LIBDIR)/
	ln -sf libctxvar.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libctxvar.so
	sed $(PC_SED) ctxvar.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/ctxvar.pc
	sed $(CM_SED) cmake/ctxvar-config.cmake.in > $(DESTDIR)$(CMAKEDIR)/ctxvar-config.cmake
	sed $(CM_SED) cmake/ctxvar-config-version.cmake.in > $(DESTDIR)$(CMAKEDIR)/ctxvar-config-version.cmake

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/ctxvar.h $(DESTDIR)$(LIBDIR)/libctxvar.a \
	  $(DESTDIR)$(LIBDIR)/libctxvar.so $(DESTDIR)$(LIBDIR)/$(SONAME) \
	  $(DESTDIR)$(LIBDIR)/libctxvar.so.$(VERSION) $(DESTDIR)$(PKGCONFIGDIR)/ctxvar.pc \
	  $(DESTDIR)$(CMAKEDIR)/ctxvar-config.cmake $(DESTDIR)$(CMAKEDIR)/ctxvar-config-version.cmake
	-rmdir $(DESTDIR)$(CMAKEDIR) 2>/dev/null

# Build outputs only: the build directories and what the fuzzers drop at
# the top. results/ (committed reports, coverage SUMMARY.md) stays; the
# coverage HTML, which git ignores, goes.
clean:
	rm -rf build build-* results/coverage/html
	rm -f fuzz/crash-* fuzz/leak-* fuzz/timeout-*

check: test

# ---------------------------------------------------------------------------
# make help: every target on one screen.
# ---------------------------------------------------------------------------
define HELP_TEXT
ctxvar $(VERSION) -- make targets (variables: PREFIX LIBDIR INCLUDEDIR DESTDIR CC BUILD)
  all (default)     build/libctxvar.a, libctxvar.so.$(VERSION) (+ .so.$(ABI), .so links)
  test, check       the whole suite; installs its Debian packages first
  report            benchmarks against CPython -> results/   (FULL=1: the long sweep)
  install           headers, libraries, ctxvar.pc, CMake package under DESTDIR/PREFIX
  uninstall         removes what install wrote (same variables)
  clean             build outputs only (build/, build-*/); results/ stays
  deps              every Debian package any target needs (as root)
 parts of make test:
  unit canary valgrind clang-check    the cmocka suite, plain / canary / memcheck / clang
  prop prop-canary prop-cpython       RapidCheck property tests
  stress tsan asan-stress             threads under sanitizers
  fuzz-replay fuzz-short fuzz-canary  the fuzz corpora and short runs
  abi                 dlopen, ctypes, plugin, symbols, layout, C++, diagnostics, instr
  consumers           pkg-config, CMake find_package/add_subdirectory, Meson, uninstall
  docs-check docs-spdx  LICENSE, API.md, README, paths, CHANGELOG; SPDX lines (last)
  examples            examples/*.c built, run, output compared
  bench-smoke         every benchmark once, tiny N
  model               spin: the context lifetime protocols (tests/model/)
 others:
  fuzz fuzz-afl fuzz-build  fuzzing (FUZZ_SECONDS=600), AFL++ builds
  coverage                  lcov line + branch coverage -> results/coverage/
  bench-instr tls-roads     callgrind instruction counts (locked ones too)
  advise PROFILE="..."      which backend for your workload
endef
export HELP_TEXT
help:
	@echo "$$HELP_TEXT"

# ---------------------------------------------------------------------------
# The test, fuzz and bench fragments: each area owns its own .mk.
# ---------------------------------------------------------------------------
include tests/tests.mk
include tests/abi/abi.mk
include tests/consumers/consumers.mk
include tests/docs/docs.mk
include examples/examples.mk
include tests/model/model.mk
-include tests/prop/prop.mk
-include tests/stress/stress.mk
-include tests/coverage.mk
-include tests/trace/trace.mk
-include fuzz/fuzz.mk
-include tests/mutate/mutate.mk
-include bench/bench.mk

# What the test binaries link (cmocka, RapidCheck, Google Benchmark,
# Python, valgrind's headers) is installed before they are built, also when
# one is asked for alone (order-only: installing never forces a rebuild).
# Flags read from python3.11-config when make starts need a second make
# after a first install: `make test` does that itself.
$(BUILD)/tests/unit build-prop/prop build-prop/prop_cpython $(BUILD)/bench/bench \
  $(BUILD)/bench/instr $(BUILD)/bench/memory: | deps-test

# Last step of make test: every tracked source file has its SPDX line
# (tests/docs/docs.mk; tools/spdx.sh adds them), after every other step.
test-run: docs-spdx
-include integrations/libuv/libuv.mk
