# tests/consumers/consumers.mk -- ctxvar as its users take it (included by
# the top-level Makefile; `make consumers` is part of `make test`):
# `make install` into a staging tree (DESTDIR, PREFIX, LIBDIR, INCLUDEDIR),
# then tests/consumers/consumer.c built and run through each road:
#   pkg-config (shared)   pkg-config --static (static)
#   CMake find_package(ctxvar CONFIG): ctxvar::ctxvar, ctxvar::ctxvar_static
#   CMake add_subdirectory of this tree (the top-level CMakeLists.txt)
#   Meson dependency('ctxvar'), shared and static
# and finally `make uninstall` must leave the staging tree empty.

CONS_DIR    := $(CURDIR)/$(BUILD)/consumers
CONS_STAGE  := $(CONS_DIR)/stage
CONS_PREFIX := /opt/ctxvar
CONS_LIBDIR := $(CONS_PREFIX)/lib/x86_64-linux-gnu
CONS_INCDIR := $(CONS_PREFIX)/include/ctxvar
CONS_ROOT   := $(CONS_STAGE)$(CONS_PREFIX)
CONS_LIB    := $(CONS_STAGE)$(CONS_LIBDIR)
CONS_VARS   := DESTDIR=$(CONS_STAGE) PREFIX=$(CONS_PREFIX) LIBDIR=$(CONS_LIBDIR) INCLUDEDIR=$(CONS_INCDIR)
# pkg-config and Meson see the staged tree as the system would see the
# installed one.
CONS_PKG_ENV := PKG_CONFIG_LIBDIR=$(CONS_LIB)/pkgconfig PKG_CONFIG_SYSROOT_DIR=$(CONS_STAGE)
CONS_SRC    := tests/consumers/consumer.c
CONS_CFLAGS := -std=c11 -Wall -Wextra -Wpedantic -Werror -O2

.PHONY: consumers consumers-install consumers-pkgconfig consumers-cmake consumers-subdir \
        consumers-meson consumers-uninstall

test-run: consumers
consumers: consumers-pkgconfig consumers-cmake consumers-subdir consumers-meson consumers-uninstall

# A shared consumer must need libctxvar.so.<major> and run; a static one
# must not need it.
define cons_check
	@readelf -d $(1) | grep -q 'NEEDED.*\[libctxvar.so.$(ABI)\]' || \
	  { echo "consumers: $(1) does not need libctxvar.so.$(ABI)"; exit 1; }
	LD_LIBRARY_PATH=$(2) $(1) $(3)
endef
define cons_check_static
	@! readelf -d $(1) | grep -q 'NEEDED.*libctxvar' || \
	  { echo "consumers: $(1) is linked to libctxvar.so"; exit 1; }
	$(1) $(2)
endef

consumers-install: all deps-packaging
	@echo "== consumers: make install $(CONS_VARS)"
	@rm -rf $(CONS_DIR) && mkdir -p $(CONS_DIR)
	@$(MAKE) --no-print-directory install $(CONS_VARS) > $(CONS_DIR)/install.log
	@for f in include/ctxvar/ctxvar.h lib/x86_64-linux-gnu/libctxvar.a \
	    lib/x86_64-linux-gnu/libctxvar.so.$(VERSION) lib/x86_64-linux-gnu/pkgconfig/ctxvar.pc \
	    lib/x86_64-linux-gnu/cmake/ctxvar/ctxvar-config.cmake \
	    lib/x86_64-linux-gnu/cmake/ctxvar/ctxvar-config-version.cmake; do \
	  [ -f $(CONS_ROOT)/$$f ] || { echo "consumers: install did not write $$f"; exit 1; }; done
	@[ "$$(readlink $(CONS_LIB)/libctxvar.so)" = libctxvar.so.$(ABI) ] && \
	 [ "$$(readlink $(CONS_LIB)/libctxvar.so.$(ABI))" = libctxvar.so.$(VERSION) ] || \
	  { echo "consumers: the installed symlinks are wrong"; exit 1; }

consumers-pkgconfig: consumers-install
	@echo "== consumers: pkg-config"
	@[ "$$($(CONS_PKG_ENV) pkg-config --modversion ctxvar)" = "$(VERSION)" ] || \
	  { echo "consumers: pkg-config --modversion is not $(VERSION)"; exit 1; }
	@$(CONS_PKG_ENV) pkg-config --libs --static ctxvar | grep -q -- -lpthread || \
	  { echo "consumers: pkg-config --static does not give -lpthread"; exit 1; }
	$(CC) $(CONS_CFLAGS) $$($(CONS_PKG_ENV) pkg-config --cflags ctxvar) -o $(CONS_DIR)/pc_shared \
	  $(CONS_SRC) $$($(CONS_PKG_ENV) pkg-config --libs ctxvar)
	$(call cons_check,$(CONS_DIR)/pc_shared,$(CONS_LIB),pkg-config)
	$(CC) $(CONS_CFLAGS) -static $$($(CONS_PKG_ENV) pkg-config --cflags --static ctxvar) \
	  -o $(CONS_DIR)/pc_static $(CONS_SRC) $$($(CONS_PKG_ENV) pkg-config --libs --static ctxvar)
	$(call cons_check_static,$(CONS_DIR)/pc_static,pkg-config-static)

consumers-cmake: consumers-install
	@echo "== consumers: CMake find_package(ctxvar CONFIG) on the installed tree"
	@cmake -S tests/consumers/find_package -B $(CONS_DIR)/find_package -G Ninja \
	  -DCMAKE_PREFIX_PATH=$(CONS_ROOT) > $(CONS_DIR)/find_package.log 2>&1 && \
	 cmake --build $(CONS_DIR)/find_package >> $(CONS_DIR)/find_package.log 2>&1 || \
	  { cat $(CONS_DIR)/find_package.log; exit 1; }
	$(call cons_check,$(CONS_DIR)/find_package/consumer_shared,$(CONS_LIB),find_package)
	$(call cons_check_static,$(CONS_DIR)/find_package/consumer_static,find_package-static)
	@sed 's/find_package(ctxvar 0.2 /find_package(ctxvar 9.0 /' tests/consumers/find_package/CMakeLists.txt \
	   | sed 's|\.\./consumer\.c|$(CURDIR)/$(CONS_SRC)|' > $(CONS_DIR)/too_new.txt; \
	 mkdir -p $(CONS_DIR)/too_new_src; cp $(CONS_DIR)/too_new.txt $(CONS_DIR)/too_new_src/CMakeLists.txt; \
	 if cmake -S $(CONS_DIR)/too_new_src -B $(CONS_DIR)/too_new -DCMAKE_PREFIX_PATH=$(CONS_ROOT) \
	      > $(CONS_DIR)/too_new.log 2>&1; then \
	   echo "consumers: find_package(ctxvar 9.0) accepted $(VERSION)"; exit 1; fi; \
	 echo "find_package(ctxvar 9.0): refused, as it must be (ConfigVersion)"

consumers-subdir: all deps-packaging
	@echo "== consumers: CMake add_subdirectory of this tree"
	@rm -rf $(CONS_DIR)/subdirectory
	@cmake -S tests/consumers/subdirectory -B $(CONS_DIR)/subdirectory -G Ninja \
	  -DCTXVAR_SOURCE_DIR=$(CURDIR) > $(CONS_DIR)/subdirectory.log 2>&1 && \
	 cmake --build $(CONS_DIR)/subdirectory -j2 >> $(CONS_DIR)/subdirectory.log 2>&1 || \
	  { cat $(CONS_DIR)/subdirectory.log; exit 1; }
	@readelf -d $(CONS_DIR)/subdirectory/ctxvar/libctxvar.so | grep -q 'SONAME.*\[libctxvar.so.$(ABI)\]' || \
	  { echo "consumers: the CMake build has no SONAME libctxvar.so.$(ABI)"; exit 1; }
	@sh tests/abi/symbols.sh $(CONS_DIR)/subdirectory/ctxvar
	$(call cons_check,$(CONS_DIR)/subdirectory/consumer_shared,$(CONS_DIR)/subdirectory/ctxvar,add_subdirectory)
	$(call cons_check_static,$(CONS_DIR)/subdirectory/consumer_static,add_subdirectory-static)

consumers-meson: consumers-install
	@echo "== consumers: Meson dependency('ctxvar')"
	@$(CONS_PKG_ENV) meson setup $(CONS_DIR)/meson tests/consumers/meson > $(CONS_DIR)/meson.log 2>&1 && \
	 ninja -C $(CONS_DIR)/meson >> $(CONS_DIR)/meson.log 2>&1 || { cat $(CONS_DIR)/meson.log; exit 1; }
	$(call cons_check,$(CONS_DIR)/meson/consumer_shared,$(CONS_LIB),meson)
	$(call cons_check_static,$(CONS_DIR)/meson/consumer_static,meson-static)

consumers-uninstall: consumers-pkgconfig consumers-cmake consumers-meson
	@echo "== consumers: make uninstall"
	@$(MAKE) --no-print-directory uninstall $(CONS_VARS) > $(CONS_DIR)/uninstall.log
	@left=$$(find $(CONS_STAGE) -type f -o -type l); \
	  if [ -n "$$left" ]; then echo "consumers: uninstall left:"; echo "$$left"; exit 1; fi
	@echo "uninstall: nothing left in the staging tree"
