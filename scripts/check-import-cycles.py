#!/usr/bin/env python3
"""Fails when the core's top-level modules import each other in a loop.

A module is a file directly under SRC (`src/advantage.rs`) or a folder with its files
(`src/policy/`, `src/adapt.rs` + `src/adapt/`); paths between files of one module are not
counted. An edge A -> B is any `crate::B` path in A's code (`use` lines and inline paths;
in a top-level file `super::B` too), outside comments and outside `#[cfg(test)]` items:
tests may reach anywhere. The crate root (`lib.rs`) only declares modules and is skipped.

Usage: check-import-cycles.py [SRC]      (default: src)
       check-import-cycles.py --self-test (runs on scripts/fixtures/import-cycles/: the
                                           cyclic one must fail, the acyclic one pass)
Exit status 1 on a cycle, naming every module of it and the paths that tie it.
"""

import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super)::([A-Za-z_][A-Za-z0-9_]*)")


def strip_comments_and_strings(text):
    """The code with comments and string/char literals blanked (line breaks kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    out.append("\n" if text[i] == "\n" else "")
                    i += 1
        elif c == '"' or (c == "r" and re.match(r'r#*"', text[i:])):
            m = re.match(r'r(#*)"', text[i:])
            if m:
                end = text.find('"' + m.group(1), i + len(m.group(0)))
                i = n if end < 0 else end + 1 + len(m.group(1))
            else:
                i += 1
                while i < n and text[i] != '"':
                    i += 2 if text[i] == "\\" else 1
                i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'", text[i:]).group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_cfg_test(code):
    """The code without items marked `#[cfg(test)]` (a block to its closing brace, or a
    statement to its semicolon)."""
    out, pos = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]", code):
        if m.start() < pos:
            continue
        out.append(code[pos : m.start()])
        i = m.end()
        while i < len(code) and code[i] not in "{;":
            i += 1
        if i < len(code) and code[i] == "{":
            depth = 0
            while i < len(code):
                depth += {"{": 1, "}": -1}.get(code[i], 0)
                i += 1
                if depth == 0:
                    break
        else:
            i += 1
        pos = i
    out.append(code[pos:])
    return "".join(out)


def module_of(src, path):
    rel = path.relative_to(src)
    return rel.parts[0][:-3] if len(rel.parts) == 1 else rel.parts[0]


def edges(src):
    """{module: {imported module: [(file, line, path text)]}}."""
    graph = {}
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src)
        if rel.parts == ("lib.rs",) or rel.parts == ("main.rs",):
            continue
        module = module_of(src, path)
        graph.setdefault(module, {})
        top_file = len(rel.parts) == 1
        code = strip_cfg_test(strip_comments_and_strings(path.read_text()))
        for lineno, line in enumerate(code.split("\n"), 1):
            for m in PATH.finditer(line):
                if m.group(1) == "super" and not top_file:
                    continue
                target = m.group(2)
                if target in ("self", "super") or target == module:
                    continue
                graph[module].setdefault(target, []).append((path, lineno, m.group(0)))
    known = set(graph)
    return {a: {b: w for b, w in bs.items() if b in known} for a, bs in graph.items()}


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check(src):
    graph = edges(src)
    found = cycles(graph)
    for comp in found:
        print(f"import cycle among {src}/: {', '.join(comp)}")
        for a in comp:
            for b in sorted(set(graph[a]) & set(comp)):
                path, line, text = graph[a][b][0]
                more = len(graph[a][b]) - 1
                also = f" (and {more} more)" if more else ""
                print(f"  {a} -> {b}: {path}:{line} {text}{also}")
    if not found:
        n = sum(len(bs) for bs in graph.values())
        print(f"no import cycle among the {len(graph)} modules of {src}/ ({n} edges)")
    return not found


def self_test():
    here = Path(__file__).resolve().parent / "fixtures" / "import-cycles"
    bad = check(here / "cyclic" / "src")
    good = check(here / "acyclic" / "src")
    if bad or not good:
        print("self-test FAILED: the cyclic fixture must fail and the acyclic one pass")
        return False
    print("self-test ok: the cyclic fixture fails, the acyclic one passes")
    return True


def main(argv):
    if argv[1:] == ["--self-test"]:
        return 0 if self_test() else 1
    if len(argv) > 2:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    src = Path(argv[1] if len(argv) == 2 else "src")
    if not src.is_dir():
        print(f"check-import-cycles: {src} is not a directory", file=sys.stderr)
        return 2
    return 0 if check(src) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
