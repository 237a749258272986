# ctxvar -- one entry point.
#
#   make            libctxvar.a and libctxvar.so in build/
#   make test       the whole suite (installs what it needs from Debian)
#   make report     benchmarks every backend against CPython, writes results/
#   make install PREFIX=/usr/local
#   make clean
#
# Other targets: deps, unit, valgrind, clang-check, fuzz, prop, tsan,
# coverage, bench-instr, mutate (see the fragments included at the bottom).

PREFIX   ?= /usr/local
CC       ?= cc
CXX      ?= c++
BUILD    ?= build
OPT      ?= -O2
WARN     := -std=c11 -Wall -Wextra -Wpedantic -Werror
CFLAGS   ?= $(OPT) -g
ALL_CFLAGS := $(WARN) $(CFLAGS) -fPIC -D_GNU_SOURCE
LDLIBS   := -lpthread

LIB_SRC  := $(wildcard core/*.c) $(wildcard maps/*.c)
LIB_HDR  := $(wildcard core/*.h) $(wildcard maps/*.h)
LIB_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC))
LIB_A    := $(BUILD)/libctxvar.a
LIB_SO   := $(BUILD)/libctxvar.so

.PHONY: all test test-run report deps deps-test deps-report install clean unit valgrind clang-check

all: $(LIB_A) $(LIB_SO)

$(BUILD)/%.o: %.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DCV_BUILDING_SHARED -fvisibility=hidden -c $< -o $@

$(LIB_A): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(LIB_SO): $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDLIBS)

# ---------------------------------------------------------------------------
# Dependencies: installed from Debian's packages when missing (as root).
# ---------------------------------------------------------------------------
DEPS_TEST   := gcc g++ make clang libclang-rt-14-dev llvm libcmocka-dev zip unzip \
               librapidcheck-dev libbenchmark-dev valgrind libpython3.11-dev python3
DEPS_REPORT := gcc g++ make libbenchmark-dev hyperfine gnuplot-nox \
               libpython3.11-dev python3 valgrind
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
	    { echo "deps: apt-get install$$missing failed"; exit 1; }; \
	fi
endef

deps-test:
	$(call apt_ensure,$(DEPS_TEST))
deps-report:
	$(call apt_ensure,$(DEPS_REPORT))
deps-extra:
	$(call apt_ensure,$(DEPS_EXTRA))
deps: deps-test deps-report deps-extra

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
# install
# ---------------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 core/ctxvar.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|' ctxvar.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ctxvar.pc

clean:
	rm -rf build build-* results/coverage

# ---------------------------------------------------------------------------
# The test, fuzz and bench fragments: each area owns its own .mk.
# ---------------------------------------------------------------------------
include tests/tests.mk
-include tests/prop/prop.mk
-include tests/stress/stress.mk
-include tests/coverage.mk
-include fuzz/fuzz.mk
-include tests/mutate/mutate.mk
-include bench/bench.mk
