# SPDX-License-Identifier: MIT
# tests/trace/trace.mk -- the recorder (CTXVAR_TRACE, core/trace.c) and the
# replayer (bench/replay.c): part of `make test` (about 10 s).
#
#   make trace-test
#
# 1. tests/trace/roundtrip.c (four threads, every kind of operation) runs
#    untraced and traced: the same output (tracing changes nothing).
# 2. The trace replays on every backend and `replay --digest` prints the
#    very pairs the program found in each context it inspected at the end.
# 3. Bad traces (tests/trace/badtraces.py) are refused with exit status 2
#    and a message naming the problem; 150 randomly damaged ones never crash
#    the replayer.
# 4. An unwritable CTXVAR_TRACE switches tracing off with one message and
#    the program's output unchanged.
# 5. bench/advise --trace ranks the backends (JSON: ranking[0] is the advice).
# 6. memcheck: the traced program and a replay, no errors, nothing lost.

TRACE_DIR := $(BUILD)/trace
TRACE_RT  := $(TRACE_DIR)/roundtrip

.PHONY: trace-test

$(TRACE_RT): tests/trace/roundtrip.c bench/digest.h core/ctxvar.h $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -D_GNU_SOURCE -iquote core -o $@ $< $(LIB_A) -lpthread

test-run: trace-test

trace-test: $(TRACE_RT) $(BUILD)/bench/replay $(BUILD)/bench/instr $(BUILD)/bench/wl_server
	@echo "== trace: record, replay, bad traces, advise"
	@rm -rf $(TRACE_DIR)/out && mkdir -p $(TRACE_DIR)/out
	@./$(TRACE_RT) > $(TRACE_DIR)/out/plain.txt
	@CTXVAR_TRACE=$(TRACE_DIR)/out/rt.trace ./$(TRACE_RT) > $(TRACE_DIR)/out/traced.txt
	@cmp -s $(TRACE_DIR)/out/plain.txt $(TRACE_DIR)/out/traced.txt || \
	  { echo "trace: the traced run printed something else"; diff $(TRACE_DIR)/out/plain.txt $(TRACE_DIR)/out/traced.txt; exit 1; }
	@test -s $(TRACE_DIR)/out/plain.txt || { echo "trace: roundtrip printed nothing"; exit 1; }
	@sort $(TRACE_DIR)/out/plain.txt > $(TRACE_DIR)/out/want.txt
	@for b in $$(./$(BENCH_DIR)/instr --list 2>/dev/null | tail -n +2 || echo dictcopy chainmap hamt adaptive); do \
	  ./$(BENCH_DIR)/replay --digest --backends $$b $(TRACE_DIR)/out/rt.trace \
	    | sed 's/^foreach thread [0-9]* context [0-9]* /foreach /' | sort > $(TRACE_DIR)/out/replay-$$b.txt || \
	    { echo "trace: replay on $$b failed"; exit 1; }; \
	  cmp -s $(TRACE_DIR)/out/want.txt $(TRACE_DIR)/out/replay-$$b.txt || \
	    { echo "trace: replay on $$b did not reproduce the final contents"; \
	      diff $(TRACE_DIR)/out/want.txt $(TRACE_DIR)/out/replay-$$b.txt; exit 1; }; \
	  echo "  round trip on $$b: $$(wc -l < $(TRACE_DIR)/out/want.txt) contexts, same pairs"; \
	done
	@./$(BENCH_DIR)/replay --check $(TRACE_DIR)/out/rt.trace | $(BENCH_PY) -c \
	  'import json,sys; s=json.load(sys.stdin)["summary"]; o=s["ops"]; \
	   assert s["threads"]==4 and s["complete"], s; \
	   assert all(o.get(k,0)>0 for k in ("get","set","reset","token_release","copy","enter","exit","run","run_end","ctx_release","cleanup","ctx_get","foreach","var_new")), o; \
	   print("  summary: %d threads, %d records, every kind of operation" % (s["threads"], s["records"]))'
	@CTXVAR_TRACE=$(TRACE_DIR)/out/server.trace ./$(BUILD)/bench/wl_server 3000 > $(TRACE_DIR)/out/server.txt
	@./$(BENCH_DIR)/replay --check $(TRACE_DIR)/out/server.trace > /dev/null || \
	  { echo "trace: a workload's trace (many blocks) does not validate"; exit 1; }
	@echo "  server workload trace: $$(wc -c < $(TRACE_DIR)/out/server.trace) bytes in many blocks, valid"
	@rm -f $(TRACE_DIR)/out/two.trace $(TRACE_DIR)/out/pid.*.trace
	@CTXVAR_TRACE=$(TRACE_DIR)/out/two.trace sh -c './$(TRACE_RT) > /dev/null & ./$(TRACE_RT) > /dev/null; wait' 2> $(TRACE_DIR)/out/two.err
	@./$(BENCH_DIR)/replay --check $(TRACE_DIR)/out/two.trace > /dev/null || \
	  { echo "trace: two processes on one CTXVAR_TRACE path corrupted it"; cat $(TRACE_DIR)/out/two.err; exit 1; }
	@CTXVAR_TRACE='$(TRACE_DIR)/out/pid.%p.trace' ./$(TRACE_RT) > /dev/null
	@ls $(TRACE_DIR)/out/pid.*.trace > /dev/null 2>&1 || { echo "trace: %p in CTXVAR_TRACE was not expanded"; exit 1; }
	@echo "  two processes on one path: the trace stays valid; %p gives one trace per process"
	@$(BENCH_PY) tests/trace/badtraces.py $(TRACE_DIR)/out/rt.trace ./$(BENCH_DIR)/replay $(TRACE_DIR)/out/bad
	@CTXVAR_TRACE=/nonexistent-dir/x.trace ./$(TRACE_RT) > $(TRACE_DIR)/out/off.txt 2> $(TRACE_DIR)/out/off.err
	@cmp -s $(TRACE_DIR)/out/plain.txt $(TRACE_DIR)/out/off.txt && grep -q "tracing is off" $(TRACE_DIR)/out/off.err || \
	  { echo "trace: an unwritable trace path must leave the program alone and say so"; cat $(TRACE_DIR)/out/off.err; exit 1; }
	@echo "  unwritable path: $$(cat $(TRACE_DIR)/out/off.err)"
	@$(BENCH_PY) bench/advise --trace $(TRACE_DIR)/out/rt.trace --replay ./$(BENCH_DIR)/replay --repeat 3 --json \
	  | $(BENCH_PY) -c 'import json,sys; d=json.load(sys.stdin); r=d["ranking"]; \
	    assert len(r)>=2 and all("backend" in x for x in r) and d["advice"], d; \
	    print("  advise --trace: %s first; %s" % (r[0]["backend"], d["advice"][:90]))'
	@CTXVAR_TRACE=$(TRACE_DIR)/out/vg.trace $(VALGRIND) ./$(TRACE_RT) > /dev/null 2> $(TRACE_DIR)/out/vg1.log || \
	  { tail -30 $(TRACE_DIR)/out/vg1.log; exit 1; }
	@$(VALGRIND) ./$(BENCH_DIR)/replay --digest $(TRACE_DIR)/out/vg.trace > /dev/null 2> $(TRACE_DIR)/out/vg2.log || \
	  { tail -30 $(TRACE_DIR)/out/vg2.log; exit 1; }
	@echo "  memcheck: traced program and replay clean"
	@echo "trace: ok"
