"""The layout's promises, checked on the source: no import cycles, and a README that lists every setting."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from servicescheduler.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# Every package of the repository: the library, and the reference service's dev tools, benchmarks and
# tests around it (migrations are loaded by Alembic, by path: nothing imports them).
PACKAGES = ("servicescheduler", "devtools", "bench", "tests")
ROOT_MODULES = ("server",)


def _modules() -> dict[str, Path]:
    found = {name: ROOT / f"{name}.py" for name in ROOT_MODULES}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported(tree: ast.AST, known: set[str]) -> set[str]:
    """Project modules `tree` imports anywhere (functions too), except under `if TYPE_CHECKING:`."""
    names: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if _is_type_checking_block(node):
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import sub` imports the submodule; `from pkg import name`, the package.
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                names.add(submodule if submodule in known else node.module)
        stack.extend(ast.iter_child_nodes(node))
    return {name for name in names if name in known}


def import_graph() -> dict[str, set[str]]:
    """{module: project modules it imports}, a package's __init__ counting as the package."""
    modules = _modules()
    return {name: _imported(ast.parse(path.read_text()), set(modules)) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (iterative DFS, white/grey/black)."""
    state: dict[str, int] = {}
    for start in sorted(graph):
        if state.get(start):
            continue
        path, iterators = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while path:
            target = next(iterators[-1], None)
            if target is None:
                state[path.pop()] = 2
                iterators.pop()
            elif state.get(target) == 1:
                return path[path.index(target) :] + [target]
            elif not state.get(target):
                state[target] = 1
                path.append(target)
                iterators.append(iter(sorted(graph[target])))
    return None


def test_find_cycle_reports_a_cycle_and_accepts_a_dag() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_project_has_no_import_cycle() -> None:
    graph = import_graph()
    # the graph is real
    assert "servicescheduler.scheduler" in graph["servicescheduler.service"]
    assert "servicescheduler.scheduling.registry" in graph["servicescheduler.scheduler"]
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"


def test_routes_hold_no_sql_and_the_scheduler_builds_no_rows() -> None:
    graph = import_graph()
    for module, imports in graph.items():
        if module.startswith(("servicescheduler.api.", "servicescheduler.scheduling.")) or module in (
            "servicescheduler.scheduler",
        ):
            assert "servicescheduler.storage.models" not in imports, (
                f"{module} imports ORM models: queries belong in storage/"
            )
    for path in (ROOT / "servicescheduler" / "api").glob("*.py"):
        imports = _imported(ast.parse(path.read_text()), {"sqlalchemy", "sqlalchemy.orm", "sqlalchemy.sql"})
        # sqlalchemy.exc (classifying a database outage as 503) is allowed; queries are not.
        assert not imports, f"{path.name} imports {sorted(imports)}: queries belong in storage/"


def test_root_holds_only_the_entry_modules() -> None:
    root = sorted(path.stem for path in ROOT.glob("*.py"))
    assert root == sorted(ROOT_MODULES), f"unexpected root modules: {sorted(set(root) - set(ROOT_MODULES))}"


def test_readme_settings_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Settings") :]
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", section, flags=re.M))
    fields = {name.upper() for name in Settings.model_fields} - {"TASK_INTERVALS", "TASK_ENABLED", "TASK_CHECKIN_URLS"}
    missing = sorted(fields - documented)
    assert not missing, f"settings missing from the README's settings table: {missing}"
    assert "TASK_<NAME>_INTERVAL_SECONDS" in readme and "TASK_<NAME>_ENABLED" in readme
