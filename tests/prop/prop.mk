# tests/prop/prop.mk -- RapidCheck stateful property tests (included by the
# top-level Makefile).
#
#   make prop                  model vs ctxvar, every backend, bounded and
#                              seeded (this is what `make test` runs)
#   make prop PROP_RUNS=20000 PROP_SEED=   a long run with a random seed
#   make prop-canary           the canary backend must be caught (R9)
#   make prop-cpython          CPython's contextvars as the oracle
#
# RapidCheck parameters: PROP_RUNS (max_success), PROP_SEED (empty: random),
# PROP_SIZE (max_size: the longest command sequence), or RC_PARAMS whole.

PROP_BUILD   := build-prop
PROP_RUNS    ?= 2000
PROP_SEED    ?= 567
PROP_SIZE    ?= 150
PROP_CPY_RUNS ?= 1000
PROP_PARAMS   = max_success=$(PROP_RUNS) max_size=$(PROP_SIZE)$(if $(PROP_SEED), seed=$(PROP_SEED))
PROP_CXXFLAGS := -std=c++17 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE \
                 -iquote core -iquote maps -iquote tests/support -iquote tests/prop
PROP_CFLAGS  := $(WARN) -O1 -g -D_GNU_SOURCE -iquote core -iquote maps -iquote tests/support
PROP_HDR     := tests/prop/model.h tests/prop/harness.h
PROP_LIB     := $(PROP_BUILD)/libctxvar.a
PROP_EXTRA   := $(PROP_BUILD)/canary.o $(PROP_BUILD)/extra_backends.o
PY_CFLAGS    := $(shell /usr/bin/python3.11-config --embed --cflags 2>/dev/null | sed 's/-DNDEBUG//')
PY_LDFLAGS   := $(shell /usr/bin/python3.11-config --embed --ldflags 2>/dev/null)

.PHONY: prop prop-canary prop-cpython

test-run: prop
test-run: prop-canary
test-run: prop-cpython

# The library in its own build directory (others build concurrently); the
# sub-make builds it with the top-level rule for $(BUILD)/libctxvar.a, with
# CV_DEBUG (invariant asserts, check() after every write).
ifneq ($(BUILD),$(PROP_BUILD))
$(PROP_LIB): $(LIB_SRC) $(LIB_HDR)
	@$(MAKE) --no-print-directory BUILD=$(PROP_BUILD) CFLAGS="-O2 -g -DCV_DEBUG" $(PROP_LIB) >/dev/null
endif

$(PROP_BUILD)/%.o: tests/support/%.c tests/support/extra_backends.h $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(PROP_CFLAGS) -c $< -o $@

$(PROP_BUILD)/prop: tests/prop/prop.cc $(PROP_HDR) $(PROP_LIB) $(PROP_EXTRA)
	$(CXX) $(PROP_CXXFLAGS) -o $@ tests/prop/prop.cc $(PROP_EXTRA) $(PROP_LIB) -lrapidcheck -lpthread

$(PROP_BUILD)/prop_cpython: tests/prop/prop_cpython.cc $(PROP_HDR) $(PROP_LIB)
	$(CXX) $(PROP_CXXFLAGS) $(filter -I%,$(PY_CFLAGS)) -o $@ tests/prop/prop_cpython.cc \
	  $(PROP_LIB) -lrapidcheck $(PY_LDFLAGS) -lpthread

prop: $(PROP_BUILD)/prop
	@echo "== property tests: model vs ctxvar, every backend ($(PROP_PARAMS))"
	RC_PARAMS="$(PROP_PARAMS)" ./$(PROP_BUILD)/prop

# The canary breaks R9 on purpose: the property test must fail on it and
# shrink. RapidCheck's report goes to a log; the target fails if it passes.
prop-canary: $(PROP_BUILD)/prop
	@echo "== property tests: the canary backend must be caught"
	@sh tests/prop/canary.sh ./$(PROP_BUILD)/prop $(PROP_BUILD)/prop-canary.log \
	  "max_success=$(PROP_RUNS) max_size=$(PROP_SIZE)$(if $(PROP_SEED), seed=$(PROP_SEED))"

prop-cpython: $(PROP_BUILD)/prop_cpython
	@echo "== property tests: CPython contextvars vs ctxvar (max_success=$(PROP_CPY_RUNS))"
	RC_PARAMS="max_success=$(PROP_CPY_RUNS) max_size=$(PROP_SIZE)$(if $(PROP_SEED), seed=$(PROP_SEED))" \
	  ./$(PROP_BUILD)/prop_cpython
