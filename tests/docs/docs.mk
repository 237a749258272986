# tests/docs/docs.mk -- the repository's papers are true and complete
# (included by the top-level Makefile; `make docs-check` is part of
# `make test`):
#   license    LICENSE is the MIT license of the ctxvar authors
#   spdx       every tracked source and build file has its SPDX line (run
#              last by make test, see the Makefile)
#              (tools/spdx.sh adds the missing ones)
#   api-doc    docs/API.md documents exactly ctxvar.h's public names
#   readme     the README's code blocks are examples/ files, verbatim; it
#              shows the two commands, the license, links docs/
#   paths      no tracked file refers to a path outside the repository
#   changelog  CHANGELOG.md has an entry for VERSION and an Unreleased one

.PHONY: docs-check docs-license docs-spdx docs-api docs-readme docs-paths docs-changelog

test-run: docs-check
docs-check: docs-license docs-api docs-readme docs-paths docs-changelog
# (make test runs docs-spdx last of all: see the end of the Makefile)

docs-license:
	@echo "== docs: LICENSE"
	@head -1 LICENSE | grep -qx 'MIT License' && \
	 grep -qx 'Copyright (c) 2026 The ctxvar authors' LICENSE && \
	 grep -q 'Permission is hereby granted, free of charge' LICENSE || \
	  { echo "docs: LICENSE is not the MIT license of the ctxvar authors"; exit 1; }
	@echo "license: MIT, Copyright (c) 2026 The ctxvar authors"

docs-spdx:
	@echo "== docs: SPDX-License-Identifier in every tracked source file"
	@sh tools/spdx.sh --check
	@echo "spdx: every tracked source and build file has its line"

docs-api:
	@echo "== docs: docs/API.md against core/ctxvar.h"
	@python3 tests/docs/check_api.py core/ctxvar.h docs/API.md

docs-readme:
	@echo "== docs: README"
	@python3 tests/docs/check_readme.py README.md

docs-paths:
	@echo "== docs: no path outside the repository"
	@python3 tests/docs/check_paths.py

docs-changelog:
	@echo "== docs: CHANGELOG.md"
	@grep -q '^## \[Unreleased\]' CHANGELOG.md || { echo "docs: CHANGELOG.md has no [Unreleased] section"; exit 1; }
	@grep -q '^## \[$(VERSION)\] - ' CHANGELOG.md || { echo "docs: CHANGELOG.md has no entry for $(VERSION)"; exit 1; }
	@echo "changelog: entries for Unreleased and $(VERSION)"
