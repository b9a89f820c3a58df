"""The house's shape (issue 13): imports point one way, no cycles, no oversized module.

These read the source tree only (no database): they fail the suite when a change adds an import
against the arrows in the README's architecture section.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ["whatsapp", "organizations", "audit", "ops", "sandbox", "config"]
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def test_import_linter_contracts_are_kept():
    """Layers inside whatsapp and between the apps (pyproject.toml, [tool.importlinter])."""
    # The console script installed beside this interpreter (uv sync installs the dev group).
    result = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module → modules it imports, at module level or inside functions alike."""

    def resolve(target: str) -> str | None:
        while target:
            if target in modules:
                return target
            target = target.rpartition(".")[0]
        return None

    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(pkg + ([node.module] if node.module else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                found = resolve(target)
                if found and found != name:
                    edges.setdefault(name, set()).add(found)
    # Entry points (URL root, WSGI, Celery app) wire every app together by design.
    for entry in ("config.urls", "config.wsgi", "config.asgi", "config.celery"):
        edges.pop(entry, None)
    return edges


def _cycle_from(start: str, edges: dict[str, set[str]]) -> list[str] | None:
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in edges.get(node, ()):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def test_no_import_cycle_between_modules_even_inside_functions():
    edges = _edges(_modules())
    cycles = [c for m in sorted(edges) if (c := _cycle_from(m, edges))]
    assert not cycles, " → ".join(cycles[0])


def test_no_import_cycle_between_apps():
    edges = _edges(_modules())
    apps = {(a.split(".")[0], b.split(".")[0]) for a, bs in edges.items() for b in bs}
    both_ways = sorted({tuple(sorted(p)) for p in apps if p[0] != p[1] and p[::-1] in apps})
    assert not both_ways


@pytest.mark.parametrize("name,path", sorted(_modules().items()))
def test_no_module_over_400_lines(name, path):
    lines = sum(1 for _ in path.open(encoding="utf-8"))
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by what it owns"


def _function_level_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)) and id(inner) not in top:
                    found.append((inner.lineno, node.name))
    return found


def test_imports_inside_functions_only_in_task_bodies_and_app_ready():
    """Elsewhere an import inside a function hides a dependency (or a cycle) from readers."""
    allowed_files = {"whatsapp/tasks.py"}
    offenders = []
    for path in sorted((ROOT / "whatsapp").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if "migrations" in path.parts or rel in allowed_files:
            continue
        for line, function in _function_level_imports(path):
            if function != "ready":
                offenders.append(f"{rel}:{line} in {function}()")
    assert not offenders, offenders
