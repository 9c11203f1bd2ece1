"""`kaos store verify|gc`: check (and repair) everything the server stores; collect garbage."""

from __future__ import annotations

import typer

from kaos.cli.common import JsonOpt

app = typer.Typer(no_args_is_help=True)  # its help line: kaos.cli.main.GROUPS


@app.command()
def verify(
    repair: bool = typer.Option(
        False, "--repair", help="drop lost and corrupt objects from the index (redeploy heals)"
    ),
    as_json: JsonOpt = False,
) -> None:
    """Re-hash every stored object and check every tree the catalog names (exit 1 on damage)."""
    from kaos.cli import context
    from kaos.cli.render import echo, print_json

    report = context.api().verify_store(repair)
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
        for pack in report.get("missing_packs", []):
            echo(f"missing pack: {pack}")
        for problem in report["catalog_problems"]:
            echo(f"catalog: {problem}")
        echo("Store is healthy" if report["ok"] else "Store is damaged: see the lines above")
        if report.get("dropped"):
            echo(
                f"Repaired: {len(report['dropped'])} lost objects left the index; deploy the "
                "bundles that held them again to upload them"
            )
        elif repair and not report["ok"]:
            echo("Repaired: damaged packs left the index; their intact objects were kept")
    if not report["ok"]:
        raise typer.Exit(1)


@app.command()
def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="say what would go; change nothing"),
    as_json: JsonOpt = False,
) -> None:
    """Remove stored content nothing points at, and temp files of crashed uploads (admins)."""
    from kaos.cli import context
    from kaos.cli.render import echo, print_json

    report = context.client().gc_store(dry_run)
    if as_json:
        print_json(report)
        return
    verb = "Would remove" if report["dry_run"] else "Removed"
    echo(
        f"{verb} {report['objects_removed']} objects ({report['packs_deleted']} packs deleted, "
        f"{report['packs_rewritten']} rewritten) and {report['temp_files_removed']} temporary "
        f"files: {report['bytes_freed']} bytes"
    )
