"""The import graph of src/, by file and by top-level module: fails when two files, or two top-level modules,
import each other (DESIGN.md, "Rules of the layout"). Doc comments and unit tests are not imports.

    python3 .ci/check_imports.py src [-v]
"""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else "src"
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith(".rs"):
            files[os.path.join(d, f)] = open(os.path.join(d, f)).read()

def module_path(path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib"): rel = rel[:-1]
    return rel

by_mod = {tuple(module_path(p)): p for p in files}

def resolve(segments):
    # deepest module file that exists
    for n in range(len(segments), -1, -1):
        if tuple(segments[:n]) in by_mod:
            return by_mod[tuple(segments[:n])]
    return None

def strip_tests(text):
    i = text.find("#[cfg(test)]\nmod tests")
    return text if i < 0 else text[:i]

edges = {}
for path, text in files.items():
    text = strip_tests(text)
    # drop comment lines (doc links are not imports)
    text = "\n".join(l for l in text.split("\n") if not l.lstrip().startswith("//"))
    me = module_path(path)
    targets = set()
    for m in re.finditer(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z_0-9]*)+)", text):
        base, rest = m.group(1), m.group(2).split("::")[1:]
        if base == "crate":
            segs = rest
        elif base == "super":
            parent = me[:-1] if os.path.basename(path) not in ("mod.rs",) else me[:-1]
            segs = parent + rest
        else:
            segs = me + rest
        t = resolve(segs)
        if t and t != path:
            targets.add(t)
    for m in re.finditer(r"(?m)^\s*(?:pub(?:\([a-z]+\))? )?use (super|self|crate)::\{([^;]*)\};", text):
        base = m.group(1)
        prefix = {"crate": [], "super": me[:-1], "self": me}[base]
        for item in re.findall(r"([a-z_][a-z_0-9]*)::", m.group(2)):
            t = resolve(prefix + [item])
            if t and t != path: targets.add(t)
    # `mod x;` declarations and `pub use x::...` of children
    for m in re.finditer(r"(?m)^\s*(?:pub(?:\([a-z]+\))? )?use ([a-z_][a-z_0-9]*)::", text):
        t = resolve(me + [m.group(1)])
        if t and t != path: targets.add(t)
    edges[path] = targets

two = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if a in edges.get(b, ())})
print("file pairs importing each other:", len(two))
for a, b in two: print("  ", a, "<->", b)

top = lambda p: (module_path(p) or ["<root>"])[0]
medges = {}
for a, ts in edges.items():
    for b in ts:
        if top(a) != top(b) and top(a) != "<root>":
            medges.setdefault(top(a), set()).add(top(b))
mtwo = sorted({tuple(sorted((a, b))) for a in medges for b in medges[a] if a in medges.get(b, ())})
print("top-level modules importing each other:", mtwo)
if "-v" in sys.argv:
    for a in sorted(medges): print(a, "->", sorted(medges[a]))
sys.exit(1 if two or mtwo else 0)
