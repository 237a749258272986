# tests/stress/stress.mk -- thread stress under ThreadSanitizer and under
# AddressSanitizer + UndefinedBehaviorSanitizer (included by the top-level
# Makefile).
#
#   make tsan            library + stress built with clang -fsanitize=thread
#                        -O1 -g; any report fails the run (exit 66)
#   make asan-stress     the same under ASan + UBSan (leaks included)
#   make stress          both (what `make test` runs, bounded)
#   make tsan STRESS_ROUNDS=20000 STRESS_THREADS=16   a long run
#
# The library is built with the sanitizer too, each in its own directory,
# and with CV_DEBUG (invariant asserts, check() after every write).

STRESS_ROUNDS  ?= 2500
STRESS_THREADS ?= 8
STRESS_SRC     := tests/stress/stress.c
STRESS_CFLAGS  := -std=c11 -Wall -Wextra -Werror -O1 -g -D_GNU_SOURCE -iquote core
TSAN_FLAGS     := -fsanitize=thread
ASAN_FLAGS     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

.PHONY: stress tsan asan-stress

test-run: stress

stress: tsan asan-stress

ifneq ($(BUILD),build-tsan)
build-tsan/libctxvar.a: $(LIB_SRC) $(LIB_HDR)
	@$(MAKE) --no-print-directory BUILD=build-tsan CC=clang OPT=-O1 \
	  CFLAGS="-O1 -g -DCV_DEBUG $(TSAN_FLAGS)" build-tsan/libctxvar.a >/dev/null
endif
ifneq ($(BUILD),build-asan)
build-asan/libctxvar.a: $(LIB_SRC) $(LIB_HDR)
	@$(MAKE) --no-print-directory BUILD=build-asan CC=clang OPT=-O1 \
	  CFLAGS="-O1 -g -DCV_DEBUG $(ASAN_FLAGS)" build-asan/libctxvar.a >/dev/null
endif

# Fibers under threads (fstress.c on tests/support/fsched.c): migrations,
# yields inside run and enters, racing swaps.
FSTRESS_SRC    := tests/stress/fstress.c tests/support/fsched.c tests/support/testalloc.c
FSTRESS_ARGS   ?= 6 4 16
FSTRESS_CFLAGS := $(STRESS_CFLAGS) -iquote tests/support

build-tsan/fstress: $(FSTRESS_SRC) tests/support/fsched.h tests/support/textbuf.h tests/support/testalloc.h core/ctxvar.h build-tsan/libctxvar.a
	clang $(FSTRESS_CFLAGS) $(TSAN_FLAGS) -o $@ $(FSTRESS_SRC) build-tsan/libctxvar.a -lpthread

build-asan/fstress: $(FSTRESS_SRC) tests/support/fsched.h tests/support/textbuf.h tests/support/testalloc.h core/ctxvar.h build-asan/libctxvar.a
	clang $(FSTRESS_CFLAGS) $(ASAN_FLAGS) -o $@ $(FSTRESS_SRC) build-asan/libctxvar.a -lpthread

build-tsan/stress: $(STRESS_SRC) core/ctxvar.h build-tsan/libctxvar.a
	clang $(STRESS_CFLAGS) $(TSAN_FLAGS) -o $@ $(STRESS_SRC) build-tsan/libctxvar.a -lpthread

build-asan/stress: $(STRESS_SRC) core/ctxvar.h build-asan/libctxvar.a
	clang $(STRESS_CFLAGS) $(ASAN_FLAGS) -o $@ $(STRESS_SRC) build-asan/libctxvar.a -lpthread

tsan: build-tsan/stress build-tsan/fstress
	@echo "== thread stress under TSan ($(STRESS_ROUNDS) rounds x $(STRESS_THREADS) threads)"
	TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
	  ./build-tsan/stress $(STRESS_ROUNDS) $(STRESS_THREADS)
	@echo "== fiber stress under TSan (rounds threads fibers: $(FSTRESS_ARGS))"
	TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
	  ./build-tsan/fstress $(FSTRESS_ARGS)
	@echo "tsan: 0 reports"

asan-stress: build-asan/stress build-asan/fstress
	@echo "== thread stress under ASan + UBSan ($(STRESS_ROUNDS) rounds x $(STRESS_THREADS) threads)"
	ASAN_OPTIONS="detect_leaks=1 halt_on_error=1 exitcode=67" \
	UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1" \
	  ./build-asan/stress $(STRESS_ROUNDS) $(STRESS_THREADS)
	@echo "== fiber stress under ASan + UBSan (rounds threads fibers: $(FSTRESS_ARGS))"
	ASAN_OPTIONS="detect_leaks=1 halt_on_error=1 exitcode=67" \
	UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1" \
	  ./build-asan/fstress $(FSTRESS_ARGS)
	@echo "asan-stress: 0 reports"
