"""`kaos template`: list and write out the bundled templates (package data, works from a wheel)."""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from kaos.cli.common import JsonOpt

app = typer.Typer(no_args_is_help=True)  # its help line: kaos.cli.main.GROUPS


def _templates() -> dict[str, resources.abc.Traversable]:
    root = resources.files("kaos.templates")
    return {t.name: t for t in root.iterdir() if t.is_dir() and not t.name.startswith(("_", "."))}


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List the templates kaos ships."""
    from kaos.cli.render import ascii_table, echo, print_json

    names = sorted(_templates())
    if as_json:
        print_json(names)
    else:
        echo(ascii_table(["ind", "name"], list(enumerate(names)), title="TEMPLATES"))


@app.command()
def get(
    name: str = typer.Option(..., "--name", "-n"),
    output: Annotated[Path, typer.Option("-o", "--output", help="folder to write it into")] = Path(
        "templates"
    ),
    as_json: JsonOpt = False,
) -> None:
    """Write a template into OUTPUT/NAME (default: templates/NAME)."""
    from kaos.cli.render import echo, print_json
    from kaos.errors import KaosError

    templates = _templates()
    if name not in templates:
        raise KaosError(
            f"no template named {name!r}", f"choose one of: {', '.join(sorted(templates))}"
        )
    dest = output / name
    if dest.exists():
        raise KaosError(f"{dest} already exists", "remove it or choose another folder with -o")
    with resources.as_file(templates[name]) as source:
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__"))
    for train in dest.glob("model-train/*/model/train"):
        os.chmod(train, 0o755)  # wheels may drop the executable bit
    if as_json:
        print_json({"template": name, "path": str(dest)})
    else:
        echo(f"Successfully loaded {name} template")
