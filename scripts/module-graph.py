#!/usr/bin/env python3
"""Prints the import graph between the library's top-level modules and fails on a cycle.

A top-level module is a file or folder directly under src/ (backend, model, io, ffi, ...).
Files inside one module may import each other freely; an edge A -> B means some file of A
names `crate::B` (in a `use` or a path) or reaches B through `super::`. src/bin/ is a separate
crate and lib.rs only declares modules, so neither counts. Test-only code (`#[cfg(test)] mod
tests` blocks) is skipped: tests may reach anywhere.

Usage: python3 scripts/module-graph.py [--dot]   (exit 1 and the cycle on stderr if one exists)
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def strip(text):
    """Removes comments, string and char literals so that paths in them do not count."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    text = re.sub(r"'(?:\\.|[^'\\])'", "' '", text)
    return text


def drop_test_modules(text):
    """Cuts `#[cfg(test)] mod NAME { ... }` blocks (brace-matched)."""
    out, i = [], 0
    pat = re.compile(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{")
    while True:
        m = pat.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j


def module_path(rel):
    """src-relative file path -> module path list, e.g. backend/cpu/mod.rs -> [backend, cpu]."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return parts


def group_heads(body):
    """Top-level names inside a `{...}` use group: `{a::b, c, d::{e}}` -> [a, c, d]."""
    heads, depth, cur = [], 0, ""
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            heads.append(cur)
            cur = ""
            continue
        if depth == 0 or (ch not in "{}"):
            cur += ch if depth == 0 else ""
    heads.append(cur)
    return [h.strip().split("::")[0].strip() for h in heads if h.strip()]


def edges():
    graph = {}
    for root, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), SRC)
            if rel == "lib.rs" or rel.startswith("bin" + os.sep):
                continue
            path = module_path(rel)
            top = path[0]
            graph.setdefault(top, set())
            with open(os.path.join(root, f), encoding="utf-8") as fh:
                text = drop_test_modules(strip(fh.read()))
            targets = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)\b", text))
            for m in re.finditer(r"\bcrate::\{", text):
                depth, j = 1, m.end()
                while j < len(text) and depth:
                    depth += {"{": 1, "}": -1}.get(text[j], 0)
                    j += 1
                targets.update(group_heads(text[m.end():j - 1]))
            # super:: chains: resolve relative to this file's module.
            for m in re.finditer(r"\b((?:super::)+)(\{|[a-z_][a-z0-9_]*)", text):
                ups = m.group(1).count("super::")
                base = path[: max(len(path) - ups, 0)]
                if base:
                    continue  # still inside the same top-level module
                if m.group(2) == "{":
                    depth, j = 1, m.end()
                    while j < len(text) and depth:
                        depth += {"{": 1, "}": -1}.get(text[j], 0)
                        j += 1
                    targets.update(group_heads(text[m.end():j - 1]))
                else:
                    targets.add(m.group(2))
            for t in targets:
                if t != top and t not in ("self", "super", "crate") and exists(t):
                    graph[top].add(t)
    return graph


def exists(name):
    return os.path.isfile(os.path.join(SRC, name + ".rs")) or os.path.isdir(os.path.join(SRC, name))


def find_cycle(graph):
    """Returns one cycle as a list of nodes, or None (iterative DFS, colours)."""
    colour = {n: 0 for n in graph}
    for start in sorted(graph):
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        colour[start] = 1
        trail = [start]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
                trail.pop()
                continue
            if colour.get(nxt, 0) == 1:
                return trail[trail.index(nxt):] + [nxt]
            if colour.get(nxt, 0) == 0:
                colour[nxt] = 1
                trail.append(nxt)
                stack.append((nxt, iter(sorted(graph.get(nxt, ())))))
    return None


def layers(graph):
    """Modules by depth: 0 imports nothing in the crate, n imports only layers below n."""
    depth = {}

    def d(n, seen=()):
        if n in depth:
            return depth[n]
        if n in seen:
            return 0
        depth[n] = 1 + max((d(m, seen + (n,)) for m in graph.get(n, ())), default=-1)
        return depth[n]

    for n in graph:
        d(n)
    return depth


def main():
    graph = edges()
    if "--dot" in sys.argv:
        print("digraph modules {")
        for a in sorted(graph):
            for b in sorted(graph[a]):
                print(f'  "{a}" -> "{b}";')
        print("}")
    cycle = find_cycle(graph)
    if cycle:
        for a in sorted(graph):
            print(f"{a:12} -> {', '.join(sorted(graph[a])) or '(nothing)'}")
        sys.stdout.flush()
        print("import cycle between top-level modules: " + " -> ".join(cycle), file=sys.stderr)
        sys.exit(1)
    if "--dot" not in sys.argv:
        depth = layers(graph)
        for a in sorted(graph, key=lambda n: (depth[n], n)):
            print(f"{depth[a]}  {a:12} -> {', '.join(sorted(graph[a])) or '(nothing)'}")
        print("no import cycle between the top-level modules of src/")


if __name__ == "__main__":
    main()
