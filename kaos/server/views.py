"""Responses made from catalog records, shared by the routes that return them."""

from __future__ import annotations

from kaos.pipeline.ids import image_name
from kaos.pipeline.records import Workspace
from kaos.server.schemas import InputsOut, WorkspaceOut, image_out
from kaos.server.services import Services


def inputs_out(svc: Services, ws: Workspace) -> InputsOut:
    inputs = ws.inputs
    source_name = svc.bundle_name(inputs.source)
    image = svc.catalog.image(inputs.source, svc.executor.kind) if inputs.source else None
    shown = image_name(source_name, inputs.source) if inputs.source and source_name else None
    return InputsOut(
        source=inputs.source,
        data=inputs.data,
        source_name=source_name,
        data_name=svc.bundle_name(inputs.data),
        grid=inputs.grid.to_json() if inputs.grid else None,
        resources=inputs.resources.to_json(),
        image=image_out(image, shown),
    )


def workspace_out(svc: Services, ws: Workspace) -> WorkspaceOut:
    return WorkspaceOut(
        name=ws.name,
        created=ws.created,
        inputs=inputs_out(svc, ws),
        jobs=len(svc.catalog.jobs(ws.name)),
    )
