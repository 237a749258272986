# SPDX-License-Identifier: MIT
# tests/model/model.mk -- exhaustive models of the context lifetime
# protocols, checked by spin (included by the top-level Makefile; part of
# `make test`, a few seconds):
#
#   make model
#
# ctx_state.pml    c_state as implemented (enter's fetch_or, exit and
#                  release through cv__refs_drop), 2 threads and 3: must pass
# split_naive.pml  the split entered flag + count that docs/design/
#                  refcount.md rejects: spin must find its use after free
# spare.pml        the spare (core/context.c, "The spare"): must pass
#
# Each prints one line: states explored, errors, result. A model that
# must pass fails the target on any error or an incomplete search; the
# naive one fails it if spin finds nothing. Work files: $(BUILD)/model/.

MODEL_DIR := $(BUILD)/model
MODEL_RUN := sh tests/model/run.sh

.PHONY: model deps-spin

deps-spin:
	$(call apt_ensure,spin gcc)

test-run: model

model: deps-spin
	@echo "== model: spin, the context lifetime protocols"
	@$(MODEL_RUN) $(MODEL_DIR)/ctx_state-2 tests/model/ctx_state.pml pass "ctx_state (2 threads)" -DNT=2
	@$(MODEL_RUN) $(MODEL_DIR)/ctx_state-3 tests/model/ctx_state.pml pass "ctx_state (3 threads)" -DNT=3 -DRETAINERS=1
	@$(MODEL_RUN) $(MODEL_DIR)/split_naive tests/model/split_naive.pml fail "split_naive"
	@$(MODEL_RUN) $(MODEL_DIR)/spare tests/model/spare.pml pass "spare"
