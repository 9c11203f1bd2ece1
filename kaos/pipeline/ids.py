"""Identifiers: job ids, bundle ids, model ids, and unique-prefix lookup (as git does)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from kaos.errors import Ambiguous, NotFound

MODEL_ID = re.compile(r"^[0-9a-f]{5}_[0-9a-f]{5}:[0-9a-f]{6}$")


def new_job_id() -> str:
    return uuid.uuid4().hex


def model_id(source: str, data: str, output_tree: str) -> str:
    """`code_data:hash`: 5 hex of the source, 5 of the data, 6 of the model output tree."""
    return f"{source[:5]}_{data[:5]}:{output_tree[:6]}"


def image_name(bundle_name: str, source: str) -> str:
    return f"build-train-{bundle_name}:{source[:5]}"


def resolve_prefix(prefix: str, candidates: Iterable[str], what: str) -> str:
    """The one candidate starting with `prefix`; a clear error for none or several."""
    prefix = prefix.strip().lower()
    if not prefix:
        raise NotFound(f"empty {what} id")
    matches = sorted({c for c in candidates if c.startswith(prefix)})
    if not matches:
        raise NotFound(f"no {what} matches {prefix!r}", "list them with 'kaos train list'")
    if len(matches) > 1:
        shown = ", ".join(m[:12] for m in matches[:4])
        raise Ambiguous(f"{what} id {prefix!r} is ambiguous ({shown}...)", "type more characters")
    return matches[0]
