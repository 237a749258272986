"""tests/docs/check_paths.py -- no tracked file refers to a path outside
the repository: no relative path that climbs above the root (from the
file's directory, which is how an #include, a Markdown link or a script
resolves it), and no absolute path into a home or work directory of the
machine it was written on.

    python3 tests/docs/check_paths.py      (from the root of the tree)
"""
import os
import re
import subprocess
import sys

root = os.getcwd()
files = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True,
                       text=True).stdout.split("\0")
climb = re.compile(r"(?<![A-Za-z0-9_.])((?:\.\./)+)([A-Za-z0-9_.\-/]*)")
absolute = re.compile(r"(?<![A-Za-z0-9_.:/])(/(?:home|work|root|Users|mnt|srv)/[A-Za-z0-9_.\-/]+)")
bad = []
for f in files:
    if not f or f.startswith(("fuzz/corpus/", "results/")) or not os.path.isfile(f):
        continue
    try:
        text = open(f, encoding="utf-8").read()
    except UnicodeDecodeError:
        continue
    here = os.path.dirname(os.path.join(root, f))
    for n, line in enumerate(text.splitlines(), 1):
        for m in climb.finditer(line):
            target = os.path.normpath(os.path.join(here, m.group(1) + m.group(2)))
            if os.path.relpath(target, root).startswith(".."):
                bad.append("%s:%d: %s leaves the repository" % (f, n, m.group(0)))
        for m in absolute.finditer(line):
            bad.append("%s:%d: %s is a path on some machine" % (f, n, m.group(1)))
for b in bad:
    print("paths: " + b)
if bad:
    sys.exit(1)
print("paths: no tracked file refers to a path outside the repository (%d files)" % len(files))
