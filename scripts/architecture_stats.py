"""Print the package's structural figures: top-level modules, import cycles (function-level imports
included), modules over the line limit, functions over the line limit, lines branching on
``multi_label`` outside the task modules.

    uv run python scripts/architecture_stats.py [--max-function 80] [--max-module 400]
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import grimp

PACKAGE = "sentiment_hf"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE
TASK_MODULES = ("tasks",)


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py"))


def top_level_modules() -> list[str]:
    """Modules directly under the package (``__init__`` excluded)."""
    return sorted(p.stem for p in ROOT.glob("*.py") if p.stem != "__init__")


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module in the import graph."""
    graph = grimp.build_graph(PACKAGE, include_external_packages=False)
    names = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in names}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, []):
            if w not in index:
                strong(w)
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
            if len(comp) > 1:
                out.append(sorted(comp))

    import sys

    sys.setrecursionlimit(10_000)
    for v in names:
        if v not in index:
            strong(v)
    return out


def long_functions(limit: int) -> list[tuple[str, str, int]]:
    """(file, function, lines) for every function or method longer than ``limit`` lines."""
    found = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append((str(path.relative_to(ROOT.parent)), node.name, length))
    return sorted(found, key=lambda f: -f[2])


def long_modules(limit: int) -> list[tuple[str, int]]:
    found = []
    for path in _modules():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > limit:
            found.append((str(path.relative_to(ROOT.parent)), n))
    return found


def multi_label_branches() -> list[str]:
    """Lines outside the task modules that branch on ``multi_label``."""
    found = []
    for path in _modules():
        rel = path.relative_to(ROOT)
        if rel.parts[0] in TASK_MODULES or rel.stem in TASK_MODULES:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if "multi_label" in code and any(
                k in code for k in ("if ", " else ", "elif ", "while ")
            ):
                found.append(f"{rel}:{n}: {line.strip()}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-function", type=int, default=80)
    parser.add_argument("--max-module", type=int, default=400)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    tops = top_level_modules()
    cyc = cycles()
    funcs = long_functions(args.max_function)
    mods = long_modules(args.max_module)
    branches = multi_label_branches()
    total = len(_modules())
    print(f"modules directly under {PACKAGE}/: {len(tops)} ({total} in all)")
    print(f"import cycles: {len(cyc)}")
    for c in cyc:
        print("   ", " <-> ".join(c))
    print(f"functions over {args.max_function} lines: {len(funcs)}")
    for f in funcs:
        print(f"    {f[0]}:{f[1]} {f[2]}")
    print(f"modules over {args.max_module} lines: {len(mods)}")
    for m in mods:
        print(f"    {m[0]} {m[1]}")
    print(f"lines branching on multi_label outside the task modules: {len(branches)}")
    if args.verbose:
        for b in branches:
            print("   ", b)


if __name__ == "__main__":
    main()
