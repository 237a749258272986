"""tests/docs/check_readme.py -- the code the README shows is the code
`make test` builds and runs (examples/), so that neither can rot.

Before a fenced code block, a line
    <!-- example: examples/usage.c -->          the block is the whole file
    <!-- example: examples/runtime.c task -->   the lines between the file's
                                               /* [task] */ and /* [/task] */
says what the block quotes. A leading SPDX comment line of the file is not
part of the quote. Also: README shows the two commands, names the license
and links docs/.

    python3 tests/docs/check_readme.py README.md
"""
import re
import sys

readme_path = sys.argv[1]
lines = open(readme_path).read().splitlines()
errors, quoted = [], 0
marker = re.compile(r"<!-- example: (\S+)(?: (\S+))? -->")


def quote_of(path, region):
    text = open(path).read().splitlines()
    if text and "SPDX-License-Identifier" in text[0]:
        text = text[1:]
    if region is None:
        return text
    begin, end = "/* [%s] */" % region, "/* [/%s] */" % region
    if begin not in text or end not in text:
        errors.append("%s has no region %s ... %s" % (path, begin, end))
        return []
    return text[text.index(begin) + 1:text.index(end)]


i = 0
while i < len(lines):
    m = marker.search(lines[i])
    i += 1
    if not m:
        continue
    path, region = m.group(1), m.group(2)
    while i < len(lines) and not lines[i].startswith("```"):
        i += 1
    j = i + 1
    while j < len(lines) and not lines[j].startswith("```"):
        j += 1
    block = lines[i + 1:j]
    want = quote_of(path, region)
    if block != want:
        errors.append("%s: the block quoting %s%s differs from the file:" %
                      (readme_path, path, " [%s]" % region if region else ""))
        for a, b in zip(block + [""] * len(want), want + [""] * len(block)):
            if a != b:
                errors.append("   README: %r\n   file:   %r" % (a, b))
                break
    quoted += 1
    i = j + 1

text = "\n".join(lines)
for need, why in (("make test", "the test command"), ("make report", "the report command"),
                  ("LICENSE", "the license"), ("(docs/", "a link into docs/"), ("MIT", "the license")):
    if need not in text:
        errors.append("%s does not show %s (%r)" % (readme_path, why, need))
if quoted < 2:
    errors.append("%s quotes %d examples; the usage and runtime examples must be quoted" %
                  (readme_path, quoted))
for e in errors:
    print("readme: " + e)
if errors:
    sys.exit(1)
print("readme: %d code blocks are examples/ files, verbatim" % quoted)
