# tests/tests.mk -- the unit + conformance suite, valgrind, the clang build.
# Included by the top-level Makefile. Other fragments add their own steps
# to `test` with `test: <step>` lines.

TEST_CFLAGS := $(WARN) $(CFLAGS) -D_GNU_SOURCE -iquote core -iquote maps -iquote tests -iquote tests/support
TEST_SRC    := $(wildcard tests/*.c) $(wildcard tests/support/*.c)
TEST_HDR    := $(wildcard tests/*.h) $(wildcard tests/support/*.h)
UNIT        := $(BUILD)/tests/unit
VALGRIND    := valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
               --errors-for-leak-kinds=definite,indirect --error-exitcode=1

.PHONY: unit valgrind clang-check

# The suite links the library built with CV_DEBUG, in a directory of its
# own: CV_ASSERT is compiled in and the core runs the backend's check()
# after every write (maps/map.h). The release library ($(LIB_A)) has
# neither. The property, fuzz and stress builds define CV_DEBUG too.
# -DCV_TEST_HOOKS adds the test-only yield points of core/internal.h, so
# that the race tests force their interleavings (tests/test_threads.c).
DEBUG_DEFS := -DCV_DEBUG -DCV_TEST_HOOKS
TEST_LIB    := $(BUILD)/debug/libctxvar.a

$(TEST_LIB): $(LIB_SRC) $(LIB_HDR)
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/debug CFLAGS="$(CFLAGS) $(DEBUG_DEFS)" $@ >/dev/null

$(UNIT): $(TEST_SRC) $(TEST_HDR) $(TEST_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -o $@ $(TEST_SRC) $(TEST_LIB) -lcmocka -lpthread

# The order is the order `make test` runs them in (test-run: see Makefile).
test-run: unit
test-run: canary
test-run: valgrind
test-run: clang-check

unit: $(UNIT)
	@echo "== unit + conformance (every backend)"
	./$(UNIT)

# The canary (tests/support/canary.c, a ChainMap whose copies read the
# original's live layer) must be caught: the conformance suite run on it must
# fail, and among the failures must be the R9 isolation tests. A clean run
# would mean the suite cannot see an isolation bug. Its FAILED lines stay in
# $(BUILD)/canary.log, so the end of the output shows only the real suite.
.PHONY: canary
canary: $(UNIT)
	@echo "== canary (naive ChainMap: the R9 tests must catch it)"
	@if CV_TEST_BACKEND=canary CV_TEST_ONLY=conformance ./$(UNIT) \
	     > $(BUILD)/canary.log 2>&1; then \
	  echo "canary: NOT caught: the suite passed a backend that breaks R9"; \
	  exit 1; fi
	@caught=$$(grep -E '^\[  (FAILED  |ERROR   )\] r9_' $(BUILD)/canary.log | \
	           sed -E 's/^\[[^]]*\] //' | sort -u); \
	if [ -z "$$caught" ]; then \
	  echo "canary: NOT caught by any R9 test (it failed elsewhere: see $(BUILD)/canary.log)"; \
	  exit 1; fi; \
	echo "canary: caught by $$(echo "$$caught" | wc -l) isolation tests ($$(echo $$caught | sed 's/ /, /g'))"

# The same binary under memcheck, with fewer iterations.
valgrind: $(UNIT)
	@echo "== valgrind memcheck"
	CV_TEST_QUICK=1 $(VALGRIND) ./$(UNIT) > $(BUILD)/valgrind.log 2>&1 || \
	  { tail -60 $(BUILD)/valgrind.log; exit 1; }
	@grep -E '^\[  (PASSED|FAILED)  \]' $(BUILD)/valgrind.log | sort | uniq -c
	@echo "valgrind: 0 errors, 0 bytes definitely or indirectly lost"

# The whole library and suite built warning-free with clang at -Werror.
clang-check:
	@echo "== clang -Werror build"
	$(MAKE) --no-print-directory BUILD=build-clang CC=clang build-clang/libctxvar.so build-clang/tests/unit >/dev/null
	@echo "clang build: ok"
