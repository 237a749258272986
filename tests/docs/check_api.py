"""tests/docs/check_api.py -- docs/API.md documents exactly the public
names of core/ctxvar.h, so that neither can drift from the other:

  * every public function (CV_EXTERN, not cv_i_*), type and macro of the
    header has a "### " heading in API.md that names it in backticks;
  * every error code of CV_ERRNO_MAP is named in API.md;
  * every cv_* / CV_* / CTXVAR_* name that API.md puts in backticks exists
    in the header (a removed or renamed function fails).

    python3 tests/docs/check_api.py core/ctxvar.h docs/API.md
"""
import re
import sys

hdr_path, doc_path = sys.argv[1], sys.argv[2]
hdr = open(hdr_path).read()
doc = open(doc_path).read()
# The header without comments, for declarations.
code = re.sub(r"/\*.*?\*/", " ", hdr, flags=re.S)

functions, types, macros, codes = set(), set(), set(), set()
for line in code.splitlines():
    if line.startswith("CV_EXTERN") and "(" in line:
        name = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", line)[0]
        if not name.startswith("cv_i_"):
            functions.add(name)
for m in re.finditer(r"#define\s+([A-Za-z_][A-Za-z0-9_]*)", code):
    name = m.group(1)
    if name == "CTXVAR_H" or name.startswith("CV_I_") or name in ("cv_var_get", "cv_var_get_or"):
        continue
    macros.add(name)
for m in re.finditer(r"typedef\s+(?:struct|enum)\s+\w+\s+(\w+)\s*;", code):
    types.add(m.group(1))
for m in re.finditer(r"typedef\s+(?:struct|enum)\s+\w+\s*\{.*?\}\s*(\w+)\s*;", code, flags=re.S):
    types.add(m.group(1))
for m in re.finditer(r"XX\((E[A-Z_]+),", code):
    codes.add("CV_" + m.group(1))
# Macros the header reads but a user defines.
for m in re.finditer(r"defined\((CV_[A-Z_]+)\)", code):
    if m.group(1) != "CV_BUILDING_SHARED":
        macros.add(m.group(1))

headings = "\n".join(l for l in doc.splitlines() if l.startswith("### "))
in_headings = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)", headings))
in_doc = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)", doc))
hdr_words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", hdr))

errors = []
for kind, names in (("function", functions), ("type", types), ("macro", macros)):
    for n in sorted(names - in_headings):
        errors.append("%s %s of ctxvar.h has no '### `%s`' heading in %s" % (kind, n, n, doc_path))
for n in sorted(codes - in_doc):
    errors.append("error code %s is not in %s" % (n, doc_path))
for n in sorted(in_doc):
    if re.match(r"(cv_|CV_|CTXVAR_)", n) and not n.endswith("_") and n not in hdr_words and n not in codes:
        errors.append("%s names `%s`, which ctxvar.h does not have" % (doc_path, n))
if not functions or not types or not macros or not codes:
    errors.append("could not parse %s" % hdr_path)
for e in errors:
    print("api-doc: " + e)
if errors:
    sys.exit(1)
print("api-doc: %s documents all %d functions, %d types, %d macros and %d error codes of %s, "
      "and nothing else" % (doc_path, len(functions), len(types), len(macros), len(codes), hdr_path))
