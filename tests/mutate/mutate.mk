# SPDX-License-Identifier: MIT
# tests/mutate/mutate.mk -- mutation testing of the suite (included by the
# top-level Makefile; NOT part of `make test`: it takes many minutes).
#
#   make mutate               every mutant of tests/mutate/catalogue.txt
#                             through the suite's layers (unit, prop, fuzz
#                             replay, stress; live fuzzing for survivors);
#                             writes results/mutation/SUMMARY.md and fails
#                             below a 95% kill rate (equivalents counted out)
#   make mutate MUTANT=id[,id]  those mutants only (build/mutate/partial.md)
#   make mutate-check         every snippet still applies (seconds)
#   make mutate-list          the catalogue
#
# MUTATE_FUZZ_SECONDS (per target, survivors only; 0: none),
# MUTATE_STRESS_ROUNDS, MUTATE_KEEP=1 (keep each mutant's tree).
# Mutants run one at a time, in build/mutate/, never in the real tree.

.PHONY: mutate mutate-check mutate-list

mutate:
	@$(MAKE) --no-print-directory deps-test
	python3 tests/mutate/mutate.py $(if $(MUTANT),--only $(MUTANT))

mutate-check:
	@python3 tests/mutate/mutate.py --check

mutate-list:
	@python3 tests/mutate/mutate.py --list
