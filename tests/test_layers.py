"""The packages stay layered (docs/architecture.md): no package imports one above it."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

KAOS = Path(__file__).resolve().parent.parent / "kaos"


def imports(package: str) -> dict[str, set[str]]:
    """Module path -> every kaos module it imports (at the top or inside functions)."""
    found: dict[str, set[str]] = {}
    for path in sorted((KAOS / package).rglob("*.py")):
        if "templates" in path.parts:
            continue
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(KAOS.parent))] = {n for n in names if n.startswith("kaos")}
    return found


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{module} imports {name}"
        for module, names in imports(package).items()
        for name in sorted(names)
        if name.startswith(forbidden)
    ]


def test_the_store_imports_nothing_above_it():
    above = ("kaos.pipeline", "kaos.executors", "kaos.server", "kaos.serving", "kaos.cli")
    assert offenders("store", above) == []


def test_the_pipeline_owns_the_executor_contract_and_imports_no_executor_or_server():
    assert offenders("pipeline", ("kaos.executors", "kaos.server", "kaos.cli")) == []


def test_executors_import_no_server_or_client():
    assert offenders("executors", ("kaos.server", "kaos.cli", "kaos.client")) == []


def test_no_route_module_imports_another():
    routes = {
        module: {n for n in names if n.startswith("kaos.server.routes.")}
        for module, names in imports("server/routes").items()
    }
    assert {m: n for m, n in routes.items() if n} == {}


PARTS = {"catalog", "pipeline", "store", "serving", "executor", "parts", "_parts"}


def test_routes_reach_no_part_but_call_the_service_layer():
    """A route parses, makes one service call and returns its schema: no route module reads the
    catalog, engine, store or any other part itself (kaos/server/service does, with the user)."""
    reached = [
        f"{path.name}:{node.lineno} .{node.attr}"
        for path in sorted((KAOS / "server" / "routes").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr in PARTS
    ]
    assert reached == []
    assert offenders("server/routes", ("kaos.server.service.parts",)) == []


def test_each_route_makes_one_service_call():
    """Every route with a service parameter uses exactly one of its methods (a property, such
    as the upload limit, is not a call), so no route assembles an answer from several."""
    from kaos.server import routes

    services = {
        name: typing.get_args(alias)[0]
        for name, alias in vars(routes).items()
        if typing.get_origin(alias) is typing.Annotated
        and typing.get_args(alias)[0].__module__.startswith("kaos.server.service.")
    }
    counted: dict[str, int] = {}
    for path in sorted((KAOS / "server" / "routes").glob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            params = {
                a.arg: services[a.annotation.id]
                for a in fn.args.args
                if isinstance(a.annotation, ast.Name) and a.annotation.id in services
            }
            if not params:
                continue
            counted[f"{path.name}:{fn.name}"] = sum(
                1
                for node in ast.walk(fn)
                if isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in params
                and callable(getattr(params[node.value.id], node.attr, None))
            )
    assert len(counted) > 30  # every resource's routes were found
    assert {route: n for route, n in counted.items() if n != 1} == {}
