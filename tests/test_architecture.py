"""The layering of docs/architecture.md stays true: the import-linter contracts of pyproject.toml, no two
modules importing each other (function-level imports included), SQL only in repositories, and the tenant
filter only in the repository base. Reads the source; runs nothing of it."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("decabill", "handlers", "models")

#: where SQL may be written: the repositories, their base, the engine (ping, advisory locks) and migrations
QUERY_HOMES = ("decabill/repository.py", "decabill/db.py", "decabill/migrations/")
#: what the rest may take from SQLAlchemy: the session type (a function states that it needs one), errors, events,
#: URL parsing
ALLOWED_SQLALCHEMY = {("sqlalchemy.ext.asyncio", "AsyncSession"), ("sqlalchemy.exc", "IntegrityError"),
                      ("sqlalchemy", "event"), ("sqlalchemy", "inspect"), ("sqlalchemy.engine", "make_url")}
#: what runs a statement
QUERY_METHODS = {"execute", "scalar", "scalars", "stream", "stream_scalars"}


def _sources() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _is_query_home(path: Path) -> bool:
    name = _relative(path)
    return name.endswith("/repository.py") or name.startswith(QUERY_HOMES)


def test_the_import_contracts_are_kept(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0, "run `lint-imports` to see the broken contract"


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            module, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    break
                if child in on_stack:
                    low[module] = min(low[module], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[module])
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _package_inits(graph: grimp.ImportGraph) -> set[str]:
    return {module for module in graph.modules if (ROOT / module.replace(".", "/") / "__init__.py").exists()}


def test_no_two_modules_import_each_other():
    """Also through other modules and through imports inside functions: a circle is a design problem, not
    something to hide in a function body. (A package's `__init__` re-exporting its own modules is not a
    circle of modules and is left out.)"""
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    for package in _package_inits(graph):
        graph.remove_module(package)
    assert _cycles(graph) == []


#: what other modules may import of a domain (a folder with a service.py): its public face, its queries (inside the
#: caller's transaction), its errors; and of identity who is calling (`principal`) and how that is found (`auth`)
DOMAIN_FACES = {"service", "repository", "errors"}
EXTRA_FACES = {"identity": {"principal", "auth"}}


def test_other_domains_and_the_faces_use_a_domain_through_its_service():
    domains = {path.parent.name for path in (ROOT / "decabill").glob("*/service.py")}
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    problems = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            parts = imported.split(".")
            if len(parts) < 3 or parts[0] != "decabill" or parts[1] not in domains:
                continue
            if importer.split(".")[:2] == parts[:2]:
                continue  # inside the domain
            if parts[2] not in DOMAIN_FACES | EXTRA_FACES.get(parts[1], set()):
                problems.append(f"{importer} imports {imported}")
    assert problems == []


def _sqlalchemy_imports(tree: ast.AST) -> list[tuple[str, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sqlalchemy":
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "*") for alias in node.names if alias.name.split(".")[0] == "sqlalchemy"]
    return found


def test_queries_are_written_only_in_repositories():
    problems = []
    for path in _sources():
        if _is_query_home(path):
            continue
        if _relative(path).startswith("models/"):
            continue  # tables are declared with SQLAlchemy; the import contracts keep queries out of them
        tree = ast.parse(path.read_text(), str(path))
        for module, name in _sqlalchemy_imports(tree):
            if (module, name) not in ALLOWED_SQLALCHEMY:
                problems.append(f"{_relative(path)} imports {name} from {module}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in QUERY_METHODS:
                problems.append(f"{_relative(path)}:{node.lineno} calls .{node.func.attr}(")
    assert problems == []


def _tenant_comparisons(tree: ast.AST) -> list[tuple[int, bool]]:
    """(line, compared with `current_tenant()`) of every `… tenant_id ==/!= …`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and all(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            sides = [node.left, *node.comparators]
            if any(isinstance(side, ast.Attribute) and side.attr == "tenant_id" for side in sides):
                with_request_tenant = any(isinstance(side, ast.Call) and isinstance(side.func, ast.Name)
                                          and side.func.id == "current_tenant" for side in sides)
                found.append((node.lineno, with_request_tenant))
    return found


def test_the_tenant_filter_is_written_only_in_the_repository_base():
    """Every query starts at `Repository.statement()` (or its update/delete), which adds the tenant filter; a
    `tenant_id` comparison anywhere else is a query that could forget it. (A repository may correlate two of its
    tables by tenant, never filter by the request's tenant itself.)"""
    problems = []
    for path in _sources():
        name = _relative(path)
        if name == "decabill/repository.py" or name.startswith("decabill/migrations/"):
            continue
        for line, with_request_tenant in _tenant_comparisons(ast.parse(path.read_text(), str(path))):
            if with_request_tenant or not name.endswith("/repository.py"):
                problems.append(f"{name}:{line}")
    assert problems == []


def test_the_checks_see_a_violation(tmp_path):
    """The scans above are not vacuous: they flag a query and a tenant filter written in a service."""
    service = tmp_path / "service.py"
    service.write_text("from sqlalchemy import select\n"
                       "async def f(session, model, tenant):\n"
                       "    return await session.execute(select(model).where(model.tenant_id == tenant))\n")
    tree = ast.parse(service.read_text())
    assert _sqlalchemy_imports(tree) == [("sqlalchemy", "select")]
    calls = [n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    assert "execute" in calls
    assert _tenant_comparisons(tree) == [(3, False)]
    assert _tenant_comparisons(ast.parse("q.where(User.tenant_id == current_tenant())")) == [(1, True)]


def test_the_cycle_check_finds_a_circle():
    graph = grimp.ImportGraph()
    for module in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(module)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.d")
    graph.add_import(importer="a.d", imported="a.b")
    assert _cycles(graph) == [["a.b", "a.c", "a.d"]]
