# examples/examples.mk -- every examples/<name>.c is built against the
# library (ctxvar.h from core/, libctxvar.a), run, and its output compared
# with examples/<name>.expected (part of `make test`). To add an example,
# add the two files; an example that needs more (a library, a runtime)
# adds its own link flags as EXAMPLE_LDLIBS_<name> here.

EXAMPLES     := $(patsubst examples/%.c,%,$(wildcard examples/*.c))
EXAMPLES_DIR := $(BUILD)/examples

.PHONY: examples

test-run: examples

$(EXAMPLES_DIR)/%: examples/%.c core/ctxvar.h $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O2 -g -Icore -o $@ $< $(LIB_A) $(EXAMPLE_LDLIBS_$*) -lpthread

examples: $(addprefix $(EXAMPLES_DIR)/,$(EXAMPLES)) deps-valgrind
	@echo "== examples: each built, run (under valgrind) and its output compared"
	@set -e; for e in $(EXAMPLES); do \
	  [ -f examples/$$e.expected ] || { echo "examples: examples/$$e.expected is missing"; exit 1; }; \
	  $(VALGRIND) ./$(EXAMPLES_DIR)/$$e > $(EXAMPLES_DIR)/$$e.out || \
	    { echo "examples: $$e failed"; exit 1; }; \
	  diff -u examples/$$e.expected $(EXAMPLES_DIR)/$$e.out || \
	    { echo "examples: $$e printed something else"; exit 1; }; \
	  echo "example $$e: ok ($$(wc -l < examples/$$e.expected) lines as expected)"; \
	done
