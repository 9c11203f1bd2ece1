"""Options shared by many commands."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as JSON, for scripts")]
WorkspaceOpt = Annotated[
    str | None, typer.Option("--workspace", "-w", help="workspace (default: the current one)")
]
