# SPDX-License-Identifier: MIT
# bench/bench.mk -- benchmarks, workloads, memory, instruction counts, the
# report and the backend advisor. Included by the top-level Makefile.
#
#   make report            quick sweep (about 5 min on 2 cores), results/<cpu-tag>/
#   make report FULL=1     N = 1 ... 1,048,576
#   make bench-instr       callgrind instruction counts, locked ones included -> results/<cpu-tag>/instr.json
#   make advise PROFILE="vars=100 gets_per_set=10 copies_per_set=1 depth=4"
#   make bench-smoke       every benchmark once, tiny N (part of `make test`)

PY_EMBED_CFLAGS  := $(shell /usr/bin/python3.11-config --embed --cflags 2>/dev/null | sed -e 's/-O[0-9s]//g' -e 's/-Werror=[a-z-]*//g' -e 's/-W[a-z-]*//g' -e 's/-g//g' -e 's/-DNDEBUG//g')
PY_EMBED_INC     := $(shell /usr/bin/python3.11-config --includes 2>/dev/null)
PY_EMBED_LDFLAGS := $(shell /usr/bin/python3.11-config --embed --ldflags 2>/dev/null)
BENCH_PY         := /usr/bin/python3

BENCH_OPT      := -O2
BENCH_CXXFLAGS := -std=c++17 $(BENCH_OPT) -g -Wall -Wextra -Werror -Wno-missing-field-initializers
BENCH_CCFLAGS  := -std=c11 $(BENCH_OPT) -g -Wall -Wextra -Werror -D_GNU_SOURCE
BENCH_INC      := -iquote core -iquote bench -iquote tests/support $(PY_EMBED_INC)
BENCH_DEFS     := -DBENCH_CXXFLAGS='"$(BENCH_CXXFLAGS)"' -DBENCH_LIB_CFLAGS='"$(CFLAGS)"'
BENCH_DIR      := $(BUILD)/bench

BENCH_HDR  := $(wildcard bench/*.h) core/ctxvar.h
BENCH_CC   := bench/bench_main.cc bench/bench_ctxvar.cc bench/bench_cpython.cc
BENCH_BIN  := $(BENCH_DIR)/bench
INSTR_BIN  := $(BENCH_DIR)/instr
MEM_BIN    := $(BENCH_DIR)/memory
FLOOR_BIN  := $(BENCH_DIR)/floor
REPLAY_BIN := $(BENCH_DIR)/replay
WORKLOADS  := server nesting wide pool scopes
WL_BINS    := $(addprefix $(BENCH_DIR)/wl_,$(WORKLOADS))
SCHED_SRC  := tests/support/sched.c

.PHONY: bench-build bench-smoke bench-instr report-run advise

bench-build: $(BENCH_BIN) $(INSTR_BIN) $(MEM_BIN) $(FLOOR_BIN) $(WL_BINS) $(REPLAY_BIN)

$(BENCH_BIN): $(BENCH_CC) $(BENCH_HDR) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CXX) $(BENCH_CXXFLAGS) $(BENCH_DEFS) $(BENCH_INC) -o $@ $(BENCH_CC) $(LIB_A) \
	  -lbenchmark $(PY_EMBED_LDFLAGS) -lpthread

$(INSTR_BIN): bench/instr.c $(BENCH_HDR) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CCFLAGS) $(BENCH_INC) -o $@ bench/instr.c $(LIB_A) $(PY_EMBED_LDFLAGS) -lpthread

$(MEM_BIN): bench/memory.c $(BENCH_HDR) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CCFLAGS) $(BENCH_INC) -o $@ bench/memory.c $(LIB_A) $(PY_EMBED_LDFLAGS) -lpthread

# The trace replayer (docs/TRACE.md): C11 + pthreads, the public API only.
$(REPLAY_BIN): bench/replay.c bench/digest.h core/ctxvar.h core/trace_format.h $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(BENCH_OPT) -g -D_GNU_SOURCE -iquote core -o $@ bench/replay.c $(LIB_A) -lpthread

$(FLOOR_BIN): bench/floor.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CCFLAGS) -o $@ bench/floor.c

$(BENCH_DIR)/wl_%: bench/workloads/%.c bench/workloads/workload.h $(SCHED_SRC) tests/support/sched.h $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CCFLAGS) $(BENCH_INC) -o $@ $< $(SCHED_SRC) $(LIB_A) -lpthread

# ---------------------------------------------------------------------------
# make test: one pass of every benchmark at tiny N and time; asserts nothing
# about speed, only that the harness still builds and runs.
# ---------------------------------------------------------------------------
test-run: bench-smoke

bench-smoke: bench-build
	@echo "== bench smoke (every benchmark, tiny N; no timing asserted)"
	@$(BENCH_PY) bench/report.py smoke --build $(BENCH_DIR)
	@echo "bench smoke: ok"

# ---------------------------------------------------------------------------
# The report.
# ---------------------------------------------------------------------------
report-run: $(LIB_A) bench-build
	@FULL=$(FULL) $(BENCH_PY) bench/report.py run --build $(BENCH_DIR) --results results

bench-instr: deps-report $(LIB_A) $(INSTR_BIN)
	@FULL=$(FULL) $(BENCH_PY) bench/report.py instr --build $(BENCH_DIR) --results results

# make advise PROFILE="..." (the cost model) or make advise TRACE=path (a
# recorded program replayed on every backend).
advise: $(if $(TRACE),$(REPLAY_BIN))
	@$(BENCH_PY) bench/advise $(if $(REPORT),--report $(REPORT)) $(if $(TRACE),--trace $(TRACE) --replay $(REPLAY_BIN)) $(PROFILE)

# ---------------------------------------------------------------------------
# make validate: the advisor checked against real programs (bench/validate.py):
# per workload the recording overhead, the replayed ranking and the model's
# prediction, and the programs themselves under each backend. Writes
# results/<cpu-tag>/validation.json, which the report's "Which backend for
# which program" section reads (regenerate with report.py generate).
# ---------------------------------------------------------------------------
.PHONY: validate
validate: $(WL_BINS) $(REPLAY_BIN) $(INSTR_BIN)
	@$(BENCH_PY) bench/validate.py --build $(BENCH_DIR) --results results $(if $(RUNS),--runs $(RUNS))

# Cross-thread costs of copy and enter/exit (bench/xthread.c).
XTHREAD_BIN := $(BENCH_DIR)/xthread
bench-build: $(XTHREAD_BIN)

$(XTHREAD_BIN): bench/xthread.c core/ctxvar.h $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CCFLAGS) -iquote core -o $@ bench/xthread.c $(LIB_A) -lpthread

.PHONY: bench-xthread
bench-xthread: $(XTHREAD_BIN)
	@$(XTHREAD_BIN)
