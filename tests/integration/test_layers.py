#!/usr/bin/env python3
"""The layer check of the product tree (issue 12, driven by test_layers.sh).

    test_layers.py [ROOT]

Reads every .c/.h file under the product folders of ROOT (default: the repository) and
prints one TAP line per finding, "not ok - ..." for each:

  * an #include "..." against the layer order (LAYERS below; STYLE.md section 2),
  * an include cycle between modules (a module is a .c/.h pair: db/tokens.c + db/tokens.h),
    inside a folder or across folders, with the include lines that close it,
  * a product source file over MAX_LINES lines,

and one "ok - ..." line for each rule nothing broke. Exits 1 if anything was found.
"""
import os
import re
import sys

MAX_LINES = 800

# folder -> the folders its files may include (its own always included). server/ is the
# daemon's glue and sits on top; agent/ and cli/ are the client programs, sharing client/.
LAYERS = {
    "util": {"util"},
    "db": {"db", "util"},
    "ca": {"ca", "util"},
    "net": {"net", "util"},
    "mqtt": {"mqtt", "util"},
    "api": {"api", "ca", "db", "util"},
    "server": {"server", "api", "mqtt", "net", "ca", "db", "util"},
    "client": {"client", "ca", "util"},
    "agent": {"agent", "client", "ca", "util"},
    "cli": {"cli", "client", "ca", "util"},
}
# module -> the folders it may include beyond its folder's rule.
EXCEPTIONS = {
    "ca/authority": {"db"},  # the CA's state lives in PostgreSQL (db/cas, db/certificates, db/crls)
    "ca/crlpub": {"db"},  # CRL publication reads revocations and records CRLs (db/crls, db/certificates)
}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def product_files(root):
    for folder in sorted(LAYERS):
        top = os.path.join(root, folder)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(dirpath, name), root)


def resolve(root, src, inc):
    """The repository path an include names: next to the including file, else from ROOT
    (-I$(top_srcdir)); None for a header that is not ours (config.h of the build)."""
    for base in (os.path.dirname(src), ""):
        path = os.path.normpath(os.path.join(base, inc))
        if os.path.isfile(os.path.join(root, path)):
            return path
    return None


def module(path):
    """A module is a .c/.h pair; a private header `<m>_internal.h` (libuv's internal.h: the
    structs and declarations the files of one module share) belongs to module <m>."""
    stem = os.path.splitext(path)[0]
    return stem[: -len("_internal")] if stem.endswith("_internal") else stem


def folder(path):
    return path.split("/", 1)[0]


def strongly_connected(graph):
    """Tarjan's algorithm: the components of graph (node -> set of nodes), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def shortest_cycle(graph, comp, start):
    """A shortest path start -> ... -> start inside comp (breadth first)."""
    members = set(comp)
    prev, queue = {start: None}, [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, ())):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return [start]


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), "..", ".."))
    files = list(product_files(root))
    layer_bad, long_bad, includes = [], [], 0
    graph, where = {}, {}  # module -> modules; (module, module) -> first "file:line"
    for f in files:
        with open(os.path.join(root, f), encoding="utf-8", errors="replace") as fh:
            lines = fh.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) > MAX_LINES:
            long_bad.append(f"{f} has {len(lines)} lines (a product source file: at most {MAX_LINES})")
        mine = module(f)
        allowed = LAYERS[folder(f)] | EXCEPTIONS.get(mine, set())
        for n, line in enumerate(lines, 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            target = resolve(root, f, m.group(1))
            if target is None:
                continue
            includes += 1
            theirs = folder(target)
            if theirs not in allowed:
                rule = ", ".join(f"{d}/" for d in sorted(allowed))
                extra = f" (and {mine} also {', '.join(sorted(EXCEPTIONS[mine]))}/)" if mine in EXCEPTIONS else ""
                layer_bad.append(f'{f}:{n}: #include "{m.group(1)}" against the layer order: '
                                 f"{folder(f)}/ may include {rule} only{extra}")
            if module(target) != mine:
                graph.setdefault(mine, set()).add(module(target))
                where.setdefault((mine, module(target)), f'{f}:{n} includes "{m.group(1)}"')

    cycles = []
    for comp in strongly_connected(graph):
        if len(comp) < 2:
            continue
        path = shortest_cycle(graph, comp, comp[0])
        steps = "; ".join(where[(a, b)] for a, b in zip(path, path[1:]))
        kind = "two modules include each other" if len(comp) == 2 else f"{len(comp)} modules in a cycle"
        cycles.append(f"include cycle ({kind}: {', '.join(comp)}): {' -> '.join(path)} ({steps})")

    for bad in layer_bad:
        print(f"not ok - {bad}")
    if not layer_bad:
        print(f"ok - {includes} includes of {len(files)} product files follow the layer order")
    for bad in cycles:
        print(f"not ok - {bad}")
    if not cycles:
        print(f"ok - no include cycle between the {len(set(map(module, files)))} product modules")
    for bad in long_bad:
        print(f"not ok - {bad}")
    if not long_bad:
        print(f"ok - no product source file over {MAX_LINES} lines")
    return 1 if layer_bad or cycles or long_bad else 0


if __name__ == "__main__":
    sys.exit(main())
