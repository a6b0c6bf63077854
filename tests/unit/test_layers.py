"""The package's layers, checked: imports only go down, `apply` and `cis` never import each
other, the engine never imports the lab, and no two modules import each other (directly or
round a loop). Function-level imports count too: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import harden

ROOT = Path(harden.__file__).parent
# Higher numbers may import lower ones. Same number: only within one part, except ssh -> inventory
# (connection settings come from inventory variables).
RANK = {"cli": 5, "demo": 5, "apply": 4, "cis": 4, "lab": 4, "runs": 3, "ssh": 2, "inventory": 2,
        "kubeadm": 2, "node": 1, "errors": 1, "progress": 1, "": 0}
ALLOWED_SIDEWAYS = {("ssh", "inventory")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("harden"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harden"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name}
            for name, path in modules.items()}


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for source, targets in edges.items():
        a = part_of(source)
        for target in targets:
            b = part_of(target)
            if a == b or target == "harden" or (a, b) in ALLOWED_SIDEWAYS:
                continue
            if (b == "lab" and RANK[a] < 5) or (b != "lab" and RANK[b] >= RANK[a]):
                bad.append(f"{source} -> {target}")
    return sorted(bad)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_every_part_of_the_tree_has_a_rank():
    assert {part_of(m) for m in graph()} <= set(RANK)


def test_imports_only_go_down_the_layers():
    assert upward_imports(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_checker_sees_an_upward_import_and_a_cycle():
    edges = {"harden.runs.journal": {"harden.apply.runner"}, "harden.apply.runner": {"harden.runs.journal"},
             "harden.cis.checks": {"harden.apply.facts"}, "harden.apply.facts": set()}
    assert upward_imports(edges) == ["harden.cis.checks -> harden.apply.facts",
                                     "harden.runs.journal -> harden.apply.runner"]
    assert cycles(edges) == [["harden.apply.runner", "harden.runs.journal"]]
