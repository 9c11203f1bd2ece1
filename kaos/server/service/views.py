"""Responses made from catalog records, shared by the services that return them."""

from __future__ import annotations

from kaos.pipeline.ids import image_name
from kaos.pipeline.records import Workspace
from kaos.server.schemas import InputsOut, WorkspaceOut, image_out
from kaos.server.service.parts import Parts


def inputs_out(parts: Parts, ws: Workspace) -> InputsOut:
    inputs = ws.inputs
    source_name = parts.bundle_name(inputs.source)
    image = parts.catalog.image(inputs.source, parts.executor.kind) if inputs.source else None
    shown = image_name(source_name, inputs.source) if inputs.source and source_name else None
    return InputsOut(
        source=inputs.source,
        data=inputs.data,
        source_name=source_name,
        data_name=parts.bundle_name(inputs.data),
        grid=inputs.grid.to_json() if inputs.grid else None,
        resources=inputs.resources.to_json(),
        image=image_out(image, shown),
    )


def workspace_out(
    parts: Parts, ws: Workspace, shares: dict[str, dict[str, str]] | None = None
) -> WorkspaceOut:
    """`shares`: every workspace's, read once for a listing (else this one's are read)."""
    if shares is None:
        shares = parts.catalog.shares(ws.name)
    return WorkspaceOut(
        name=ws.name,
        created=ws.created,
        inputs=inputs_out(parts, ws),
        jobs=len(parts.catalog.jobs(ws.name)),
        owner=ws.owner,
        shares=shares.get(ws.name, {}),
    )
