"""`kaos store verify`: re-hash everything the server stores."""

from __future__ import annotations

import typer

from kaos.cli.common import JsonOpt

app = typer.Typer(no_args_is_help=True)  # its help line: kaos.cli.main.GROUPS


@app.command()
def verify(as_json: JsonOpt = False) -> None:
    """Re-hash every stored object and check every tree the catalog names (exit 1 on damage)."""
    from kaos.cli import context
    from kaos.cli.render import echo, print_json

    report = context.client().verify_store()
    if as_json:
        print_json(report)
    else:
        echo(
            f"Checked {report['objects']} objects in {report['packs']} packs "
            f"and {report['trees']} trees"
        )
        for digest in report["corrupt"]:
            echo(f"corrupt: {digest}")
        for digest in report["missing"]:
            echo(f"missing: {digest}")
        for problem in report["catalog_problems"]:
            echo(f"catalog: {problem}")
        echo("Store is healthy" if report["ok"] else "Store is damaged: see the lines above")
    if not report["ok"]:
        raise typer.Exit(1)
