# examples/examples.mk -- every examples/*.c is built against the library
# and run by `make test` (exit status 0 = it checked its own output).
# The libuv example lives with its adapter (integrations/libuv/).

EX_SRC  := $(wildcard examples/*.c)
EX_BINS := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EX_SRC))

.PHONY: examples

$(BUILD)/examples/%: examples/%.c core/ctxvar.h $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -D_GNU_SOURCE -Icore -o $@ $< $(LIB_A) $(LDLIBS)

examples: $(EX_BINS)
	@echo "== examples"
	@for e in $(EX_BINS); do ./$$e > $$e.out || { cat $$e.out; echo "$$e failed"; exit 1; }; \
	  tail -1 $$e.out; done

test-run: examples
