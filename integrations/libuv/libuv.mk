# integrations/libuv/libuv.mk -- libctxvar-uv, the optional libuv companion
# library (included by the top-level Makefile). Built and tested when
# libuv's development files are present (pkg-config libuv); `make test`
# installs libuv1-dev first (DEPS_TEST), so there it always is.
#
#   make uv            build/libctxvar-uv.a and .so
#   make uv-test       its tests against the real libuv, plain and under valgrind
#   make install-uv    header, libraries and ctxvar-uv.pc

UV_CFLAGS := $(shell pkg-config --cflags libuv 2>/dev/null)
UV_LIBS   := $(shell pkg-config --libs libuv 2>/dev/null)
UV_OK     := $(shell pkg-config --exists libuv 2>/dev/null && echo 1)
UV_DIR    := integrations/libuv
UV_A      := $(BUILD)/libctxvar-uv.a
UV_SO     := $(BUILD)/libctxvar-uv.so
UV_OBJ    := $(BUILD)/$(UV_DIR)/ctxvar_uv.o
UV_TEST   := $(BUILD)/$(UV_DIR)/test_uv

.PHONY: uv uv-test install-uv uninstall-uv

ifeq ($(UV_OK),1)
uv: $(UV_A) $(UV_SO)

$(UV_OBJ): $(UV_DIR)/ctxvar_uv.c $(UV_DIR)/ctxvar_uv.h core/ctxvar.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(UV_CFLAGS) -iquote core -c $< -o $@

$(UV_A): $(UV_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(UV_SO): $(UV_OBJ) $(LIB_SO)
	$(CC) -shared -o $@ $(UV_OBJ) -L$(BUILD) -lctxvar $(UV_LIBS) $(LDLIBS)

# test_uv counts and fails allocations with the unit tests' allocator.
UV_TEST_SRC := $(UV_DIR)/test_uv.c tests/support/testalloc.c

$(UV_TEST): $(UV_TEST_SRC) tests/support/testalloc.h $(UV_A) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -D_GNU_SOURCE $(UV_CFLAGS) -iquote core -iquote $(UV_DIR) \
	  -iquote tests/support -o $@ $(UV_TEST_SRC) $(UV_A) $(LIB_A) $(UV_LIBS) $(LDLIBS)

UV_EXAMPLE := $(BUILD)/$(UV_DIR)/example

$(UV_EXAMPLE): $(UV_DIR)/example.c $(UV_A) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -D_GNU_SOURCE $(UV_CFLAGS) -iquote core -iquote $(UV_DIR) \
	  -o $@ $< $(UV_A) $(LIB_A) $(UV_LIBS) $(LDLIBS)

# The same tests under TSan, with the TSan build of the library (stress.mk):
# contexts copied on the loop thread and entered on libuv's pool threads.
UV_TSAN_TEST := build-tsan/$(UV_DIR)/test_uv

$(UV_TSAN_TEST): $(UV_TEST_SRC) tests/support/testalloc.h $(UV_DIR)/ctxvar_uv.c $(UV_DIR)/ctxvar_uv.h build-tsan/libctxvar.a
	@mkdir -p $(dir $@)
	clang $(STRESS_CFLAGS) $(TSAN_FLAGS) $(UV_CFLAGS) -iquote $(UV_DIR) -iquote tests/support -o $@ \
	  $(UV_TEST_SRC) $(UV_DIR)/ctxvar_uv.c build-tsan/libctxvar.a $(UV_LIBS) -lpthread

uv-test: $(UV_TEST) $(UV_EXAMPLE) $(UV_TSAN_TEST)
	@echo "== libctxvar-uv against libuv $$(pkg-config --modversion libuv)"
	./$(UV_TEST)
	@./$(UV_EXAMPLE) > $(UV_EXAMPLE).out || { cat $(UV_EXAMPLE).out; exit 1; }
	@tail -1 $(UV_EXAMPLE).out
	$(VALGRIND) ./$(UV_TEST) > $(BUILD)/uv-valgrind.log 2>&1 || \
	  { tail -40 $(BUILD)/uv-valgrind.log; exit 1; }
	@echo "libctxvar-uv: valgrind clean"
	TSAN_OPTIONS="halt_on_error=1 exitcode=66" ./$(UV_TSAN_TEST) > $(BUILD)/uv-tsan.log 2>&1 || \
	  { tail -40 $(BUILD)/uv-tsan.log; exit 1; }
	@echo "libctxvar-uv: TSan clean"

install-uv: uv
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 $(UV_DIR)/ctxvar_uv.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(UV_A) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(UV_SO) $(DESTDIR)$(LIBDIR)/
	sed $(PC_SED) $(UV_DIR)/ctxvar-uv.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/ctxvar-uv.pc

uninstall-uv:
	rm -f $(DESTDIR)$(INCLUDEDIR)/ctxvar_uv.h $(DESTDIR)$(LIBDIR)/libctxvar-uv.a \
	  $(DESTDIR)$(LIBDIR)/libctxvar-uv.so $(DESTDIR)$(PKGCONFIGDIR)/ctxvar-uv.pc

# The request-scoped server (bench/workloads/uv_http.c) under wrk: a short
# correctness run in make test, throughput per backend in make report.
UV_HTTP := $(BUILD)/bench/uv_http
UV_HTTP_RUN := $(BENCH_PY) bench/workloads/uv_http_run.py
UV_HTTP_SECONDS ?= $(if $(FULL),10,5)
UV_HTTP_ROUNDS  ?= $(if $(FULL),3,2)

.PHONY: uv-http-check uv-http-bench

$(UV_HTTP): bench/workloads/uv_http.c $(UV_A) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -D_GNU_SOURCE $(UV_CFLAGS) -iquote core -iquote $(UV_DIR) \
	  -o $@ $< $(UV_A) $(LIB_A) $(UV_LIBS) $(LDLIBS)

uv-http-check: $(UV_HTTP)
	@echo "== request-scoped HTTP server under wrk (127.0.0.1, 64 connections)"
	$(UV_HTTP_RUN) check --server $(UV_HTTP)

uv-http-bench: $(UV_HTTP)
	@echo "== request-scoped HTTP server: throughput per backend vs the id passed by hand"
	$(UV_HTTP_RUN) bench --server $(UV_HTTP) --results results \
	  --seconds $(UV_HTTP_SECONDS) --rounds $(UV_HTTP_ROUNDS)

install: install-uv
uninstall: uninstall-uv
test-run: uv-test uv-http-check
report-run: uv-http-bench
else
uv uv-test install-uv uv-http-check uv-http-bench:
	@echo "$@: libuv not found: run 'make deps' (as root) to install libuv1-dev"; exit 1
uninstall-uv:
	rm -f $(DESTDIR)$(INCLUDEDIR)/ctxvar_uv.h $(DESTDIR)$(LIBDIR)/libctxvar-uv.a \
	  $(DESTDIR)$(LIBDIR)/libctxvar-uv.so $(DESTDIR)$(PKGCONFIGDIR)/ctxvar-uv.pc
uninstall: uninstall-uv
endif
