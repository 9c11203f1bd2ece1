"""MLflow scoring-server request bodies turned into rows, with one-line errors.

Pure and standard-library only: the endpoint runtime imports this file with the Python of the
model's environment, which has no kaos installed. Accepted bodies (as MLflow's `/invocations`):

    application/json  {"instances": [...]}               a list of rows (or of scalars)
                      {"inputs": [...] | {col: [...]}}   rows, or columns of equal length
                      {"dataframe_split": {"columns": [...], "data": [[...], ...]}}
                      {"dataframe_records": [{col: value, ...}, ...]}
    text/csv          one row per line; a first line that is not all numbers is a header

A row is what `predict(model, inputs)` receives in its list: a list of values (or a scalar, as
sent in "instances"). When `predict.py` declares `FEATURES` (a count, or the column names), rows
of the wrong width are refused with a 400 here, before the model sees them.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

JSON_KEYS = ("instances", "inputs", "dataframe_split", "dataframe_records")
EXPECTED = (
    'send JSON {"instances": [...]}, {"inputs": ...}, {"dataframe_split": {"columns": [...], '
    '"data": [...]}} or {"dataframe_records": [...]}, or a text/csv body'
)


class RequestError(Exception):
    """A request the endpoint refuses: the HTTP status and one line saying what was expected."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_request(content_type: str | None, body: bytes, features: Any = None) -> list[Any]:
    """The rows of a request body, checked against `features` (a width or column names)."""
    kind = (content_type or "application/json").split(";")[0].strip().lower()
    if kind == "application/json":
        rows, columns = _parse_json(body)
    elif kind == "text/csv":
        rows, columns = _parse_csv(body)
    else:
        raise RequestError(415, f"unsupported content type {kind!r}: {EXPECTED}")
    if not rows:
        raise RequestError(400, "the request holds no rows: " + EXPECTED)
    return _fit(rows, columns, features)


def _parse_json(body: bytes) -> tuple[list[Any], list[str] | None]:
    try:
        payload = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"malformed JSON ({_first_line(exc)}): {EXPECTED}") from None
    except RecursionError:
        raise RequestError(400, "JSON nested too deeply: send rows of plain values") from None
    if not isinstance(payload, dict):
        raise RequestError(400, f"the JSON body must be an object: {EXPECTED}")
    keys = [k for k in JSON_KEYS if k in payload]
    if len(keys) != 1:
        found = ", ".join(sorted(payload)) or "nothing"
        raise RequestError(400, f"expected exactly one of {', '.join(JSON_KEYS)}, got {found}")
    key = keys[0]
    value = payload[key]
    if key == "instances":
        return _list(value, key), None
    if key == "inputs":
        if isinstance(value, dict):
            return _columns_to_rows(value)
        return _list(value, key), None
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise RequestError(400, 'dataframe_split must be {"columns": [...], "data": [[...]]}')
        columns = value.get("columns")
        if columns is not None and not (
            isinstance(columns, list) and all(isinstance(c, str) for c in columns)
        ):
            raise RequestError(400, "dataframe_split.columns must be a list of names")
        rows = [_list(row, "each row of dataframe_split.data") for row in value["data"]]
        if columns is not None:
            _same_width(rows, len(columns), "dataframe_split.columns")
        return rows, columns
    return _records(_list(value, key))


def _records(records: list[Any]) -> tuple[list[Any], list[str]]:
    if not all(isinstance(r, dict) for r in records):
        raise RequestError(400, "dataframe_records must be a list of {column: value} objects")
    columns = list(records[0]) if records else []
    for record in records:
        if set(record) != set(columns):
            raise RequestError(
                400, f"every record needs the same columns: {', '.join(columns)} (as the first)"
            )
    return [[record[c] for c in columns] for record in records], columns


def _columns_to_rows(value: dict[str, Any]) -> tuple[list[Any], list[str]]:
    columns = list(value)
    lists = [_list(value[c], f"inputs.{c}") for c in columns]
    if len({len(col) for col in lists}) > 1:
        raise RequestError(400, "every column of inputs must have the same length")
    return [list(row) for row in zip(*lists, strict=True)], columns


def _parse_csv(body: bytes) -> tuple[list[Any], list[str] | None]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RequestError(400, "the CSV body must be UTF-8 text") from None
    lines = [row for row in csv.reader(io.StringIO(text)) if row]
    columns = None
    if lines and not all(_is_number(cell) for cell in lines[0]):
        columns, lines = [c.strip() for c in lines[0]], lines[1:]
    rows = [[_number(cell) for cell in row] for row in lines]
    _same_width(rows, len(columns) if columns else (len(rows[0]) if rows else 0), "the header")
    return rows, columns


def _fit(rows: list[Any], columns: list[str] | None, features: Any) -> list[Any]:
    """Check (and, with named features, order) the rows for what the model declared."""
    if features is None:
        return rows
    if isinstance(features, int):
        _same_width(rows, features, "the model", each=True)
        return rows
    names = [str(f) for f in features]
    if columns is None:
        _same_width(rows, len(names), "the model", each=True)
        return rows
    missing = [n for n in names if n not in columns]
    if missing:
        raise RequestError(400, f"missing columns {', '.join(missing)}; expected {names}")
    order = [columns.index(n) for n in names]
    return [[row[i] for i in order] for row in rows]


def _same_width(rows: list[Any], width: int, what: str, each: bool = False) -> None:
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} values" if isinstance(row, list) else "a single value"
            detail = f"expected rows of {width} features (as {what} declares)"
            raise RequestError(400, f"{detail}; row {i} has {got}")
    if each and not rows:
        raise RequestError(400, "the request holds no rows: " + EXPECTED)


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise RequestError(400, f"{what} must be a JSON list")
    return value


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _number(cell: str) -> Any:
    cell = cell.strip()
    try:
        return int(cell)
    except ValueError:
        try:
            return float(cell)
        except ValueError:
            return cell


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
