# fuzz/fuzz.mk -- the fuzz targets (fuzz/README.md). Included by the
# top-level Makefile.
#
#   make fuzz FUZZ_SECONDS=600   fuzz every target (libFuzzer -fork=nproc),
#                                new inputs go to build-fuzz/corpus/<t>
#   make fuzz-replay             every committed input through the plain
#                                driver (gcc, no libFuzzer)         [test]
#   make fuzz-short              each target FUZZ_SHORT_SECONDS (15 s) [test]
#   make fuzz-canary             ctx_ops must catch the canary backend [test]
#   make fuzz-merge              new inputs of make fuzz / fuzz-short merged
#                                (libFuzzer -merge=1) into fuzz/corpus/<t>
#                                as merged-<sha1>, the merged set minimized
#   make fuzz-engine-build       .clusterfuzzlite/build.sh under the
#                                ClusterFuzzLite / OSS-Fuzz environment ($CC
#                                $CFLAGS $LIB_FUZZING_ENGINE $OUT $SRC): every
#                                target built, runs on its seed zip   [test]
#   make fuzz-afl                the targets built with afl-clang-fast
#   make fuzz-build              the libFuzzer binaries only
#
# The targets that need clang fail, naming `make deps`, when it is missing.
#
# Everything is built by fuzz/build.sh (the OSS-Fuzz entry point) into
# $(FUZZ_DIR); the library is compiled there from core/ and maps/ with the
# harness's compiler and sanitizers, never taken from build/.

FUZZ_DIR           ?= build-fuzz
FUZZ_CLANG         ?= clang
FUZZ_GCC           ?= gcc
FUZZ_SECONDS       ?= 60
FUZZ_SHORT_SECONDS ?= 15
FUZZ_CANARY_RUNS   ?= 200000
FUZZ_JOBS          ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_TARGETS       := $(shell grep -v '^\#' fuzz/targets)
FUZZ_SAN           := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_DEPS          := $(wildcard fuzz/*.c fuzz/*.h core/*.c core/*.h maps/*.c maps/*.h) \
                      fuzz/targets fuzz/build.sh fuzz/fuzz.mk \
                      $(wildcard tests/support/canary.c tests/support/extra_backends.* \
                                 tests/support/testalloc.*)
FUZZ_HAVE_CLANG    := $(shell command -v $(FUZZ_CLANG) >/dev/null 2>&1 && echo 1)
# Known library bugs the fuzzers skip while exploring (their regress-*
# inputs in fuzz/corpus still replay in fuzz-replay): see fuzz/README.md.
FUZZ_SKIP_KNOWN    ?= 0
FUZZ_ENV           := CTXVAR_FUZZ_SKIP_KNOWN=$(FUZZ_SKIP_KNOWN) ASAN_OPTIONS=detect_leaks=0

# $(FUZZ_CLANG) was missing when make read this file: deps-clang (a
# prerequisite, see the Makefile) has installed it since, so run the target
# again in a make that sees it; if it is still missing, fail.
FUZZ_RETRY_OR_FAIL = if command -v $(FUZZ_CLANG) >/dev/null 2>&1; then \
	  exec $(MAKE) --no-print-directory $@; fi; \
	  echo "$@: $(FUZZ_CLANG) not found: run 'make deps' (as root)"; exit 1

LF_OUT     := $(FUZZ_DIR)/libfuzzer
REPLAY_OUT := $(FUZZ_DIR)/replay
AFL_OUT    := $(FUZZ_DIR)/afl

.PHONY: fuzz fuzz-build fuzz-replay fuzz-short fuzz-canary fuzz-afl fuzz-corpus fuzz-merge fuzz-engine-build

test-run: fuzz-replay
test-run: fuzz-engine-build
test-run: fuzz-short
test-run: fuzz-canary

# A missing clang is a failure that names the fix, never a silent skip.
define fuzz_no_clang
	@echo "$(1): $(FUZZ_CLANG) not found: run 'make deps' (or 'make deps-test') to install it"; exit 1
endef

# ---------------------------------------------------------------------------
# Builds
# ---------------------------------------------------------------------------
$(LF_OUT)/.built: $(FUZZ_DEPS)
	@echo "== fuzz: building the libFuzzer targets ($(FUZZ_CLANG), ASan+UBSan)"
	@mkdir -p $(LF_OUT)
	CC=$(FUZZ_CLANG) CFLAGS="-O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	  LIB_FUZZING_ENGINE=-fsanitize=fuzzer OUT=$(LF_OUT) FUZZ_CANARY=1 \
	  ./fuzz/build.sh > $(LF_OUT)/build.log 2>&1 || { cat $(LF_OUT)/build.log; exit 1; }
	@touch $@

# gcc with its own sanitizers when it has them, else plain.
FUZZ_GCC_SAN := $(shell echo 'int main(void){return 0;}' | $(FUZZ_GCC) $(FUZZ_SAN) -x c - -o /dev/null 2>/dev/null && echo '$(FUZZ_SAN)')

$(REPLAY_OUT)/.built: $(FUZZ_DEPS) fuzz/replay_main.c
	@echo "== fuzz: building the replay drivers ($(FUZZ_GCC) $(FUZZ_GCC_SAN))"
	@mkdir -p $(REPLAY_OUT)
	$(FUZZ_GCC) $(WARN) -D_GNU_SOURCE -O1 -g $(FUZZ_GCC_SAN) -c fuzz/replay_main.c -o $(REPLAY_OUT)/replay_main.o
	CC=$(FUZZ_GCC) CFLAGS="-O1 -g $(FUZZ_GCC_SAN)" LIB_FUZZING_ENGINE=$(REPLAY_OUT)/replay_main.o \
	  OUT=$(REPLAY_OUT) FUZZ_NO_SEEDS=1 ./fuzz/build.sh > $(REPLAY_OUT)/build.log 2>&1 || \
	  { cat $(REPLAY_OUT)/build.log; exit 1; }
	@touch $@

ifeq ($(FUZZ_HAVE_CLANG),1)
fuzz-build: $(LF_OUT)/.built
else
fuzz-build:
	$(call fuzz_no_clang,fuzz-build)
endif

# AFL++: the same sources through afl-clang-fast and AFL++'s libFuzzer driver.
# Run one with: afl-fuzz -i fuzz/corpus/ctx_ops -o build-fuzz/afl-out \
#   -x fuzz/ctx_ops.dict -- build-fuzz/afl/ctx_ops
fuzz-afl:
	@command -v afl-clang-fast >/dev/null 2>&1 && [ -f /usr/lib/afl/libAFLDriver.a ] || \
	  { echo "fuzz-afl: afl-clang-fast or /usr/lib/afl/libAFLDriver.a not found: run 'make deps' (as root)"; exit 1; }
	@mkdir -p $(AFL_OUT)
	CC=afl-clang-fast CFLAGS="-O1 -g" LIB_FUZZING_ENGINE=/usr/lib/afl/libAFLDriver.a \
	  OUT=$(AFL_OUT) ./fuzz/build.sh
	@echo "AFL++ targets in $(AFL_OUT)"

# The seed inputs (seed-*) from fuzz/gen_corpus.py; regress-* are kept.
fuzz-corpus:
	python3 fuzz/gen_corpus.py

# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------
fuzz-replay: $(REPLAY_OUT)/.built
	@echo "== fuzz-replay: fuzz/corpus/* through the plain driver ($(FUZZ_GCC))"
	@set -e; for t in $(FUZZ_TARGETS); do \
	  [ -x $(REPLAY_OUT)/$$t ] || { echo "fuzz-replay: $$t not built (see $(REPLAY_OUT)/build.log)"; continue; }; \
	  ASAN_OPTIONS=detect_leaks=0 $(REPLAY_OUT)/$$t fuzz/corpus/$$t 2> $(REPLAY_OUT)/$$t.log || \
	    { tail -30 $(REPLAY_OUT)/$$t.log; echo "fuzz-replay: $$t FAILED on $$(grep '^replay:' $(REPLAY_OUT)/$$t.log | tail -1)"; exit 1; }; \
	done

fuzz-short:
ifeq ($(FUZZ_HAVE_CLANG),1)
	@$(MAKE) --no-print-directory $(LF_OUT)/.built
	@echo "== fuzz-short: each target $(FUZZ_SHORT_SECONDS) s (new inputs: $(FUZZ_DIR)/short/)"
	@set -e; for t in $(FUZZ_TARGETS); do \
	  [ -x $(LF_OUT)/$$t ] || { echo "fuzz-short: $$t not built"; continue; }; \
	  mkdir -p $(FUZZ_DIR)/short/$$t $(FUZZ_DIR)/artifacts; \
	  $(FUZZ_ENV) $(LF_OUT)/$$t -max_total_time=$(FUZZ_SHORT_SECONDS) -print_final_stats=1 \
	    -dict=fuzz/$$t.dict -max_len=4096 -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t- \
	    $(FUZZ_DIR)/short/$$t fuzz/corpus/$$t > $(FUZZ_DIR)/short/$$t.log 2>&1 || \
	    { grep -B5 -A25 -m1 'ERROR\|^[a-z_]*: ' $(FUZZ_DIR)/short/$$t.log | head -60; \
	      echo "fuzz-short: $$t crashed; input in $(FUZZ_DIR)/artifacts/ (minimise with -minimize_crash=1)"; exit 1; }; \
	  awk -F': *' -v t=$$t '/stat::number_of_executed_units/ {n=$$NF} /stat::average_exec_per_sec/ {r=$$NF} \
	    END {printf "fuzz-short %-13s %9d executions, %6d exec/s\n", t, n, r}' $(FUZZ_DIR)/short/$$t.log; \
	done
else
	@$(FUZZ_RETRY_OR_FAIL)
endif

# The canary backend breaks R9 on purpose; ctx_ops must crash with its
# isolation message within FUZZ_CANARY_RUNS executions from an empty corpus
# (fixed seed, the dictionary only). The expected crash goes to a log.
fuzz-canary:
ifeq ($(FUZZ_HAVE_CLANG),1)
	@$(MAKE) --no-print-directory $(LF_OUT)/.built
	@echo "== fuzz-canary: ctx_ops on the canary backend"
	@rm -rf $(FUZZ_DIR)/canary && mkdir -p $(FUZZ_DIR)/canary/corpus
	@if CTXVAR_FUZZ_BACKENDS=canary $(FUZZ_ENV) $(LF_OUT)/ctx_ops_canary -runs=$(FUZZ_CANARY_RUNS) \
	    -seed=1 -dict=fuzz/ctx_ops.dict -artifact_prefix=$(FUZZ_DIR)/canary/ \
	    $(FUZZ_DIR)/canary/corpus > $(FUZZ_DIR)/canary/canary.log 2>&1; then \
	  echo "fuzz canary: NOT caught in $(FUZZ_CANARY_RUNS) executions"; exit 1; fi
	@grep -q 'ISOLATION MISMATCH' $(FUZZ_DIR)/canary/canary.log || \
	  { tail -30 $(FUZZ_DIR)/canary/canary.log; echo "fuzz canary: crashed, but not with the isolation message"; exit 1; }
	@sed -n 's/.*ISOLATION MISMATCH.*(execution #\([0-9]*\) of this process).*/fuzz canary: caught after \1 executions/p' \
	  $(FUZZ_DIR)/canary/canary.log | head -1
else
	@$(FUZZ_RETRY_OR_FAIL)
endif

fuzz:
ifeq ($(FUZZ_HAVE_CLANG),1)
	@$(MAKE) --no-print-directory $(LF_OUT)/.built
	@echo "== fuzz: each target $(FUZZ_SECONDS) s, -fork=$(FUZZ_JOBS) (new inputs: $(FUZZ_DIR)/corpus/)"
	@for t in $(FUZZ_TARGETS); do \
	  [ -x $(LF_OUT)/$$t ] || continue; \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/artifacts $(FUZZ_DIR)/logs; \
	  $(FUZZ_ENV) $(LF_OUT)/$$t -fork=$(FUZZ_JOBS) -ignore_crashes=1 -max_total_time=$(FUZZ_SECONDS) \
	    -dict=fuzz/$$t.dict -max_len=4096 -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t- \
	    $(FUZZ_DIR)/corpus/$$t fuzz/corpus/$$t > $(FUZZ_DIR)/logs/$$t.log 2>&1; \
	  grep -E '^#[0-9]+: cov' $(FUZZ_DIR)/logs/$$t.log | tail -1 | \
	    sed -E 's/^#([0-9]+): .*exec\/s:? ([0-9]+) .*crash: [0-9]+\/[0-9]+\/([0-9]+).*/fuzz '"$$t"': \1 executions, \2 exec\/s, \3 crashes/'; \
	done
	@ls $(FUZZ_DIR)/artifacts/ 2>/dev/null | grep -q . && \
	  echo "crashes in $(FUZZ_DIR)/artifacts/: minimise with <target> -minimize_crash=1 -runs=10000 <input>, keep as fuzz/corpus/<target>/regress-*" || true
else
	@$(FUZZ_RETRY_OR_FAIL)
endif

# ---------------------------------------------------------------------------
# Merging new inputs back into the committed corpora
# ---------------------------------------------------------------------------
# For each target: the merged-* inputs already committed and the new ones
# (build-fuzz/corpus/<t> from make fuzz, build-fuzz/short/<t> from
# fuzz-short) are merged with -merge=1 against the readable seed-* and
# regress-* inputs, which always stay; what adds coverage beyond them is
# kept as fuzz/corpus/<t>/merged-<sha1>, the rest is dropped, so the merged
# part is minimized on every merge. Review and commit fuzz/corpus/.
FUZZ_MERGE_DIR := $(FUZZ_DIR)/merge
fuzz-merge:
ifeq ($(FUZZ_HAVE_CLANG),1)
	@$(MAKE) --no-print-directory $(LF_OUT)/.built
	@echo "== fuzz-merge: new inputs into fuzz/corpus/<target> (libFuzzer -merge=1)"
	@set -e; for t in $(FUZZ_TARGETS); do \
	  [ -x $(LF_OUT)/$$t ] || continue; \
	  rm -rf $(FUZZ_MERGE_DIR)/$$t && mkdir -p $(FUZZ_MERGE_DIR)/$$t/old; \
	  before=$$(ls fuzz/corpus/$$t | wc -l); \
	  for f in fuzz/corpus/$$t/merged-*; do [ -e "$$f" ] && mv "$$f" $(FUZZ_MERGE_DIR)/$$t/old/; done; \
	  new=""; for d in $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/short/$$t; do [ -d $$d ] && new="$$new $$d"; done; \
	  $(FUZZ_ENV) $(LF_OUT)/$$t -merge=1 -max_len=4096 \
	    -merge_control_file=$(FUZZ_MERGE_DIR)/$$t.control \
	    fuzz/corpus/$$t $(FUZZ_MERGE_DIR)/$$t/old $$new > $(FUZZ_MERGE_DIR)/$$t.log 2>&1 || \
	    { tail -20 $(FUZZ_MERGE_DIR)/$$t.log; \
	      mv $(FUZZ_MERGE_DIR)/$$t/old/* fuzz/corpus/$$t/ 2>/dev/null || true; \
	      echo "fuzz-merge: $$t failed (the old merged-* inputs are back)"; exit 1; }; \
	  for f in fuzz/corpus/$$t/*; do \
	    b=$$(basename "$$f"); \
	    case "$$b" in seed-*|regress-*|merged-*) ;; *) mv "$$f" "fuzz/corpus/$$t/merged-$$b" ;; esac; \
	  done; \
	  echo "fuzz-merge $$t: $$before -> $$(ls fuzz/corpus/$$t | wc -l) inputs ($$(ls fuzz/corpus/$$t | grep -c '^merged-' || true) merged-*)"; \
	done
else
	@$(FUZZ_RETRY_OR_FAIL)
endif

# ---------------------------------------------------------------------------
# The ClusterFuzzLite / OSS-Fuzz build, as their engines run it
# ---------------------------------------------------------------------------
# .clusterfuzzlite/build.sh with the environment their base-builder image
# gives it (the flags of OSS-Fuzz's ASan + libFuzzer build, $SRC holding
# the repository as $SRC/ctxvar, the working directory the Dockerfile's
# WORKDIR), then: every target of fuzz/targets but those the engines' build
# skips is in $OUT, runs 50 inputs from its unzipped seed corpus, and has
# its .dict, .options and <target>_seed_corpus.zip with every corpus file;
# no canary build is there (it crashes on purpose). Docker itself is not
# run here; fuzz/oss-fuzz/ is the same script.
ENGINE_DIR    := $(FUZZ_DIR)/engine
ENGINE_CFLAGS := -O1 -fno-omit-frame-pointer -gline-tables-only \
                 -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION \
                 -fsanitize=address -fsanitize-address-use-after-scope \
                 -fsanitize=fuzzer-no-link
ENGINE_SKIP   := cpython_diff
fuzz-engine-build:
ifeq ($(FUZZ_HAVE_CLANG),1)
	@echo "== fuzz-engine-build: .clusterfuzzlite/build.sh with the ClusterFuzzLite environment"
	@rm -rf $(ENGINE_DIR) && mkdir -p $(ENGINE_DIR)/src $(ENGINE_DIR)/out $(ENGINE_DIR)/work
	@ln -s $(CURDIR) $(ENGINE_DIR)/src/ctxvar
	@cp .clusterfuzzlite/build.sh $(ENGINE_DIR)/src/build.sh
	@cd $(ENGINE_DIR)/src/ctxvar && env -u FUZZ_CANARY -u FUZZ_NO_SEEDS -u FUZZ_SKIP -u FUZZ_WARN \
	  CC=$(FUZZ_CLANG) CXX=clang++ CFLAGS="$(ENGINE_CFLAGS)" CXXFLAGS="$(ENGINE_CFLAGS)" \
	  LIB_FUZZING_ENGINE=-fsanitize=fuzzer SANITIZER=address FUZZING_ENGINE=libfuzzer \
	  SRC=$(CURDIR)/$(ENGINE_DIR)/src OUT=$(CURDIR)/$(ENGINE_DIR)/out WORK=$(CURDIR)/$(ENGINE_DIR)/work \
	  bash $(CURDIR)/$(ENGINE_DIR)/src/build.sh > $(CURDIR)/$(ENGINE_DIR)/build.log 2>&1 || \
	  { tail -30 $(CURDIR)/$(ENGINE_DIR)/build.log; echo "fuzz-engine-build: the build failed"; exit 1; }
	@set -e; out=$(ENGINE_DIR)/out; n=0; \
	for t in $(FUZZ_TARGETS); do \
	  case " $(ENGINE_SKIP) " in *" $$t "*) continue ;; esac; \
	  [ -x $$out/$$t ] || { echo "fuzz-engine-build: $$t not built"; exit 1; }; \
	  for f in $$t.dict $$t.options $${t}_seed_corpus.zip; do \
	    [ -s $$out/$$f ] || { echo "fuzz-engine-build: $$out/$$f missing"; exit 1; }; done; \
	  want=$$(ls fuzz/corpus/$$t | wc -l); \
	  rm -rf $(ENGINE_DIR)/seed/$$t && mkdir -p $(ENGINE_DIR)/seed/$$t; \
	  unzip -q $$out/$${t}_seed_corpus.zip -d $(ENGINE_DIR)/seed/$$t; \
	  got=$$(ls $(ENGINE_DIR)/seed/$$t | wc -l); \
	  [ "$$got" = "$$want" ] || { echo "fuzz-engine-build: $${t}_seed_corpus.zip has $$got of $$want inputs"; exit 1; }; \
	  ASAN_OPTIONS=detect_leaks=0 $$out/$$t -runs=50 -seed=1 -dict=$$out/$$t.dict \
	    $(ENGINE_DIR)/seed/$$t > $(ENGINE_DIR)/$$t.run.log 2>&1 || \
	    { tail -30 $(ENGINE_DIR)/$$t.run.log; echo "fuzz-engine-build: $$t failed on its seed corpus"; exit 1; }; \
	  n=$$((n + 1)); \
	done; \
	[ ! -e $$out/ctx_ops_canary ] || { echo "fuzz-engine-build: the canary build is in \$$OUT"; exit 1; }; \
	echo "fuzz-engine-build: $$n targets built and run on their seed zips (.dict, .options present; skipped: $(ENGINE_SKIP))"
else
	@$(FUZZ_RETRY_OR_FAIL)
endif
