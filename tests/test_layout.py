"""The code's layout rules, read from lossbench's source with ``ast``: no import cycles, nothing private of
another library, no attribute of another library assigned, no write into MLflow's tables."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import lossbench

ROOT = Path(lossbench.__file__).parent
FRAMEWORKS = ("hydra", "omegaconf", "mlflow", "joblib", "loky", "sqlalchemy", "alembic", "torch", "sklearn")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ["lossbench", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path):
    """(imported dotted name, line) for every import in the module, top-level or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def _graph() -> dict[str, dict[str, int]]:
    """lossbench module -> {module it imports: line}; ``from pkg import sub`` counts as ``pkg.sub``."""
    graph: dict[str, dict[str, int]] = {m: {} for m in MODULES}
    for name, path in MODULES.items():
        for target, line in _imports(name, path):
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].setdefault(target, line)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_module_imports_itself_back_through_others():
    graph = _graph()
    assert len(graph) > 40  # every module was read
    cycles = _cycles(graph)
    detail = [" ".join(f"{a} ({', '.join(b for b in graph[a] if b in c)})" for a in c) for c in cycles]
    assert cycles == [], detail


def test_nothing_private_of_another_library_is_imported():
    bad = []
    for name, path in MODULES.items():
        for target, line in _imports(name, path):
            top = target.split(".")[0]
            if top in FRAMEWORKS and any(part.startswith("_") for part in target.split(".")[1:]):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert bad == []


def _top(module: str | None) -> str:
    return (module or "").split(".")[0]


def _framework_aliases(tree: ast.Module) -> set[str]:
    """Local names bound to a framework module or to a name imported from one."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FRAMEWORKS:
                    names.add((alias.asname or alias.name).split(".")[0])
        elif (
            isinstance(node, ast.ImportFrom)
            and not node.level
            and (node.module or "").split(".")[0] in FRAMEWORKS
        ):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def test_no_attribute_of_another_library_is_assigned():
    bad = []
    for path in MODULES.values():
        tree = ast.parse(path.read_text())
        aliases = _framework_aliases(tree)
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
                targets = node.args[:1]
            for target in targets:
                while isinstance(target, ast.Attribute):
                    target = target.value
                    if isinstance(target, ast.Name) and target.id in aliases:
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno} assigns to {target.id}.…")
    assert bad == []


def test_nothing_writes_into_mlflows_tables():
    statement = re.compile(r"\b(INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE)\b", re.I)
    bad = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in MODULES.values()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if statement.search(line)
    ]
    assert bad == []
