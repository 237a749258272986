# tests/abi/abi.mk -- the library as others load it (included by the
# top-level Makefile; every step is part of `make test`):
#
#   make abi-symbols  nm -D: exactly ctxvar.h's API + the inline get's
#                     symbols, node CTXVAR_<major>.<minor>, SONAME
#   make abi-layout   a binary built against another cache layout / node
#                     fails at link and at load time
#   make abi-dlopen   a C host dlopens build/libctxvar.so, runs S1 and S3
#   make abi-ctypes   the system python3 loads it with ctypes
#   make abi-plugin   a dlopened plugin and its host share one context
#   make abi-pyext    python3 imports an extension module using the inline get
#   make abi-cxx      ctxvar.h under g++/clang++ -Wall -Wextra -Werror -pedantic
#   make abi-diag     a refused CTXVAR_BACKEND, error names, versions
#   make abi-instr    the inline get's cost in an executable (callgrind)
#   make tls-roads    instructions per get on each road (docs/design/tls.md)

ABI_DIR    := $(BUILD)/abi
ABI_CFLAGS := $(WARN) -O2 -g -D_GNU_SOURCE -Icore
ABI_RPATH  := -Wl,-rpath,$(CURDIR)/$(BUILD)
ABI_CXX_STD := c++11 c++17 c++20
# get_hot of bench/instr (chainmap, N=16) before this layout work: 28 Ir;
# the inline get in an executable may not cost more than 2 more.
ABI_GET_HOT_MAX := 30
ABI_EXE_ROAD_MAX := 28

.PHONY: abi abi-symbols abi-layout abi-dlopen abi-ctypes abi-plugin abi-pyext abi-cxx abi-diag \
        abi-instr tls-roads

test-run: abi
abi: abi-symbols abi-layout abi-dlopen abi-ctypes abi-plugin abi-pyext abi-cxx abi-diag abi-instr

abi-symbols: $(LIB_SO)
	@echo "== abi: exported symbols, version node, SONAME"
	@sh tests/abi/symbols.sh $(BUILD)

abi-layout: $(LIB_SO)
	@echo "== abi: another inline-cache layout fails at link and load time"
	@CC=$(CC) sh tests/abi/layout.sh $(BUILD)

$(ABI_DIR)/dlopen_host: tests/abi/dlopen_host.c tests/abi/abi_check.h core/ctxvar.h
	@mkdir -p $(dir $@)
	$(CC) $(ABI_CFLAGS) -o $@ $< -ldl

abi-dlopen: $(ABI_DIR)/dlopen_host $(LIB_SO) deps-valgrind
	@echo "== abi: dlopen(libctxvar.so) into a process not linked to it (S1, S3)"
	./$(ABI_DIR)/dlopen_host ./$(LIB_SO)
	@$(VALGRIND) ./$(ABI_DIR)/dlopen_host ./$(LIB_SO) > /dev/null && echo "dlopen host: valgrind clean"

abi-ctypes: $(LIB_SO)
	@echo "== abi: python3 ctypes loads libctxvar.so"
	env -u LD_PRELOAD -u GLIBC_TUNABLES /usr/bin/python3 tests/abi/ctypes_test.py ./$(LIB_SO)

# The plugin: -fPIC shared code with the inline get (default TLS model),
# linked to libctxvar.so; the host links it too and uses its own inline get
# (initial-exec).
$(ABI_DIR)/plugin.so: tests/abi/plugin.c core/ctxvar.h $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) $(ABI_CFLAGS) -fPIC -shared -o $@ $< -L$(BUILD) -lctxvar $(ABI_RPATH)

$(ABI_DIR)/plugin_host: tests/abi/plugin_host.c tests/abi/abi_check.h core/ctxvar.h $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) $(ABI_CFLAGS) -o $@ $< -L$(BUILD) -lctxvar -ldl -lpthread $(ABI_RPATH)

abi-plugin: $(ABI_DIR)/plugin.so $(ABI_DIR)/plugin_host deps-valgrind
	@echo "== abi: a dlopened plugin using the inline get shares the host's context"
	@readelf -d $(ABI_DIR)/plugin.so | grep -q STATIC_TLS && \
	  { echo "abi-plugin: the plugin needs static TLS"; exit 1; } || true
	./$(ABI_DIR)/plugin_host ./$(ABI_DIR)/plugin.so
	@$(VALGRIND) ./$(ABI_DIR)/plugin_host ./$(ABI_DIR)/plugin.so > /dev/null && echo "plugin host: valgrind clean"

# A Python extension module (the system python3's headers and suffix):
# python dlopens it, and libctxvar.so with it, long after startup.
ABI_PY       := /usr/bin/python3
ABI_PYEXT    := $(ABI_DIR)/ctxvar_pyext$(shell $(ABI_PY) -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))" 2>/dev/null)
ABI_PYINC    := $(shell $(ABI_PY) -c "import sysconfig; print(sysconfig.get_paths()['include'])" 2>/dev/null)

$(ABI_PYEXT): tests/abi/pyext.c core/ctxvar.h $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -g -fPIC -shared -Icore -I$(ABI_PYINC) -o $@ $< \
	  -L$(BUILD) -lctxvar $(ABI_RPATH)

abi-pyext: $(ABI_PYEXT)
	@echo "== abi: python3 imports an extension module that uses the inline get"
	env -u LD_PRELOAD -u GLIBC_TUNABLES $(ABI_PY) tests/abi/pyext_test.py $(ABI_DIR)

abi-cxx: $(LIB_A) deps-clang
	@echo "== abi: ctxvar.h from C++ (-Wall -Wextra -Werror -pedantic)"
	@bad=$$(grep -oE '\b[A-Za-z0-9_]*__[A-Za-z0-9_]*\b' core/ctxvar.h | sort -u | \
	  grep -vxE "__(GNUC|cplusplus|thread|attribute|builtin_expect|PIC|PIE)(__)?" || true); \
	  if [ -n "$$bad" ]; then echo "abi-cxx: reserved identifiers in ctxvar.h: $$bad"; exit 1; fi
	@sh tools/rename_reserved.sh --check
	@mkdir -p $(ABI_DIR)
	@set -e; for cxx in g++ clang++; do for std in $(ABI_CXX_STD); do \
	  $$cxx -std=$$std -Wall -Wextra -Werror -pedantic -O2 -Icore -o $(ABI_DIR)/cxx \
	    tests/abi/cxx.cc $(LIB_A) -lpthread; \
	  printf '%s -std=%s: ' $$cxx $$std; ./$(ABI_DIR)/cxx; done; done

$(ABI_DIR)/diag: tests/abi/diag.c tests/abi/abi_check.h core/ctxvar.h $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) $(ABI_CFLAGS) -o $@ $< -L$(BUILD) -lctxvar $(ABI_RPATH)

abi-diag: $(ABI_DIR)/diag
	@echo "== abi: misuse a program can diagnose; versions"
	@v=$$(cat VERSION); for m in MAJOR MINOR PATCH; do \
	  eval "h_$$m=\$$(sed -n 's/^#define CTXVAR_VERSION_$$m \([0-9]*\)$$/\1/p' core/ctxvar.h)"; done; \
	  s=$$(sed -n 's/^#define CTXVAR_VERSION_STRING "\(.*\)"$$/\1/p' core/ctxvar.h); \
	  [ "$$h_MAJOR.$$h_MINOR.$$h_PATCH" = "$$v" ] && [ "$$s" = "$$v" ] || \
	  { echo "abi-diag: ctxvar.h says $$h_MAJOR.$$h_MINOR.$$h_PATCH / \"$$s\", VERSION says $$v"; exit 1; }; \
	  grep -q "^Version: @VERSION@$$" ctxvar.pc.in || { echo "abi-diag: ctxvar.pc.in's Version is not from VERSION"; exit 1; }; \
	  echo "versions: VERSION = ctxvar.h = $$v"
	./$(ABI_DIR)/diag
	CV_TEST_QUICK=1 $(VALGRIND) ./$(ABI_DIR)/diag > /dev/null

# The inline get in an executable: bench/instr's get_hot (static archive)
# and the executable road of tls-roads (shared library).
abi-instr: $(BUILD)/bench/instr $(LIB_SO) deps-valgrind
	@echo "== abi: the inline get in an executable keeps its cost (callgrind)"
	@rm -rf $(ABI_DIR)/instr && mkdir -p $(ABI_DIR)/instr
	@cd $(ABI_DIR)/instr && valgrind --tool=callgrind --collect-atstart=no \
	  --callgrind-out-file=cg.out $(CURDIR)/$(INSTR_BIN) chainmap 16 2000 > run.log 2>&1 || \
	  { cat run.log; exit 1; }
	@f=$$(grep -l 'Client Request: get_hot/' $(ABI_DIR)/instr/cg.out.*); \
	  t=$$(sed -n 's/^\(totals\|summary\): *\([0-9]*\).*/\2/p' $$f | head -1); \
	  d=$$(sed -n 's/^desc: Trigger: Client Request: //p' $$f); \
	  ir=$$(echo "$$d $$t" | awk '{ split($$1, a, "/"); printf "%.1f", $$2 / a[4] / a[5] }'); \
	  echo "get_hot (bench/instr, static archive): $$ir Ir per get (limit $(ABI_GET_HOT_MAX))"; \
	  awk -v x=$$ir -v m=$(ABI_GET_HOT_MAX) 'BEGIN { exit !(x <= m) }' || \
	  { echo "abi-instr: get_hot costs $$ir > $(ABI_GET_HOT_MAX)"; exit 1; }
	@sh tests/abi/roads.sh core $(BUILD) $(ABI_DIR)/roads 20000 > $(ABI_DIR)/roads.txt
	@cat $(ABI_DIR)/roads.txt
	@ir=$$(awk '$$1 == "inline_exe" { print $$2 }' $(ABI_DIR)/roads.txt); \
	  awk -v x=$$ir -v m=$(ABI_EXE_ROAD_MAX) 'BEGIN { exit !(x <= m) }' || \
	  { echo "abi-instr: the inline get in an executable linked to the .so costs $$ir > $(ABI_EXE_ROAD_MAX)"; exit 1; }

tls-roads: $(LIB_SO) deps-valgrind
	@sh tests/abi/roads.sh core $(BUILD) $(ABI_DIR)/roads 100000
	@echo "plugin built with -mtls-dialect=gnu2:"
	@sh tests/abi/roads.sh core $(BUILD) $(ABI_DIR)/roads-gnu2 100000 -mtls-dialect=gnu2
