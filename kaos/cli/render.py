"""All terminal output lives here: the seed's ASCII tables, progress bars, times, errors."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kaos.client.bundles import Bundle
    from kaos.client.events import Bar

CHECK, CROSS, BUSY = "✔", "✗", "⨂"


def ascii_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None
) -> str:
    """A grid table as in the seed: centred cells, a rule under every row, optional title.

    Cells may span several lines ("✔\\n/features:9fd9d").
    """
    cells = [[_lines(c) for c in row] for row in rows]
    head = [_lines(h) for h in headers]
    widths = [
        max(len(line) for col in [head[i], *(r[i] for r in cells)] for line in col)
        for i in range(len(headers))
    ]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out: list[str] = []
    if title is not None:
        inner = len(rule) - 2
        if inner < len(title) + 2:  # widen the last column to fit the title
            widths[-1] += len(title) + 2 - inner
            rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
            inner = len(rule) - 2
        out += ["+" + "-" * inner + "+", "|" + title.center(inner) + "|"]
    out.append(rule)
    for row in [head, *cells]:
        height = max(len(c) for c in row)
        for line in range(height):
            parts = [
                (c[line] if line < len(c) else "").center(w)
                for c, w in zip(row, widths, strict=True)
            ]
            out.append("| " + " | ".join(parts) + " |")
        out.append(rule)
    return "\n".join(out)


def _lines(value: Any) -> list[str]:
    return str("" if value is None else value).split("\n")


def http_date(epoch: float | None) -> str:
    """`Mon, 29 Jul 2019 09:18:20 GMT`, as the seed shows start times."""
    from email.utils import formatdate  # 5 ms of start-up for the commands that show none

    return formatdate(epoch, usegmt=True) if epoch else "?"


def seconds(value: float | None) -> str:
    return "?" if value is None else str(round(value))


def echo(text: str = "") -> None:
    print(text, flush=True)


def print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True, default=str), flush=True)


def error(message: str) -> None:
    red = sys.stderr.isatty()
    line = f"Error: {message}"
    print(f"\x1b[31m{line}\x1b[0m" if red else line, file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"Warning: {message}", file=sys.stderr, flush=True)


class BarProgress:
    """A `Progress` callback drawing `Label: 100%|█████|` (the seed's bars) on stderr.

    On a terminal the bar redraws in place; elsewhere (CI logs, pipes) it prints once, when
    complete, so logs stay readable.
    """

    def __init__(self, label: str, width: int = 27) -> None:
        self.label = label
        self.width = width
        self._tty = sys.stderr.isatty()
        self._last = -1.0
        self._done = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        fraction = 1.0 if total <= 0 else min(1.0, done / total)
        if self._tty and (fraction == 1.0 or time.monotonic() - self._last > 0.05):
            self._last = time.monotonic()
            print("\r" + self._render(fraction), end="", file=sys.stderr, flush=True)
        if fraction >= 1.0 and not self._done:
            self._done = True
            if self._tty:
                print(file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self._done:
            self._done = True
            print(("\r" if self._tty else "") + self._render(1.0), file=sys.stderr, flush=True)
        elif not self._tty:
            print(self._render(1.0), file=sys.stderr, flush=True)

    def _render(self, fraction: float) -> str:
        filled = round(fraction * self.width)
        return (
            f"{self.label}: {int(fraction * 100):3d}%|{'█' * filled}{' ' * (self.width - filled)}|"
        )


def model_diff(d: dict[str, Any]) -> str:
    """`kaos train diff`: the two models, then what changed in each input, then the scores."""
    a, b = d["a"], d["b"]
    out = [f"A: {a['model_id']}  (job {a['job_id'][:12]}, model {a['index']})"]
    out.append(f"B: {b['model_id']}  (job {b['job_id'][:12]}, model {b['index']})")
    for kind in ("source", "data"):
        tree = d[kind]
        out.append("")
        if tree["same"]:
            out.append(f"{kind.capitalize()}: unchanged ({(tree['a'] or '')[:5]})")
            continue
        out.append(f"{kind.capitalize()}: {(tree['a'] or '?')[:5]} -> {(tree['b'] or '?')[:5]}")
        for f in tree["files"]:
            out.append(f"  {f['change']:<8} {f['path']}  ({_sizes(f)})")
            if f["rows_appended"] is not None:
                out.append(f"           {f['rows_appended']} rows appended")
            if f["diff"]:
                out += ["    " + line for line in f["diff"].rstrip("\n").split("\n")]
    for title, key in (("Hyperparameters", "hyperparams"), ("Packages", "packages")):
        out.append("")
        if not d[key]:
            out.append(f"{title}: unchanged")
            continue
        rows = [[c["name"], _value(c["a"]), _value(c["b"])] for c in d[key]]
        out.append(ascii_table([title.lower(), "A", "B"], rows, title=title.upper()))
    out.append("")
    if d["metrics"]:
        rows = [[c["name"], _value(c["a"]), _value(c["b"])] for c in d["metrics"]]
        out.append(ascii_table(["metric", "A", "B"], rows, title="METRICS"))
    else:
        out.append("Metrics: none recorded")
    return "\n".join(out)


def _sizes(change: dict[str, Any]) -> str:
    a, b = change["size_a"], change["size_b"]
    if a is None:
        return f"{b} bytes"
    if b is None:
        return f"was {a} bytes"
    return f"{a} -> {b} bytes"


def _value(value: Any) -> str:
    return "-" if value is None else str(value)


def reproduction_report(r: dict[str, Any]) -> str:
    """`kaos train reproduce`: "identical", or which output files differ and their sizes."""
    if r["identical"]:
        return f"identical: {r['original']} retrained to the same output tree"
    lines = [f"different: {r['original']} retrained to {r['reproduced_id']}"]
    rows = [[f["path"], f["change"], _value(f["size_a"]), _value(f["size_b"])] for f in r["files"]]
    lines.append(ascii_table(["output file", "change", "original bytes", "retrained bytes"], rows))
    return "\n".join(lines)


_CONTROLS = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, screen clears
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks
    r"|\x1b[@-_]?"  # other escapes
    r"|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f]"  # C0/C1 controls but tab and newline
)


def terminal_safe(text: str) -> str:
    """Text someone else wrote (a train script's log), made harmless for a terminal: escape
    sequences and control characters go, a lone carriage return becomes a newline."""
    return _CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def write_log(text: str) -> None:
    """Print log text as it is to a pipe or file, terminal-safe to a terminal."""
    sys.stdout.write(terminal_safe(text) if sys.stdout.isatty() else text)
    sys.stdout.flush()


class TerminalReporter:
    """The Python API's `Reporter` on a terminal: the seed's narration lines and bars.

    With `narrate` off (--json) it draws nothing but the one line saying a server was started.
    """

    def __init__(self, narrate: bool = True) -> None:
        self.narrate = narrate

    def server_started(self, endpoint: str, store: Path) -> None:
        print(
            f"Started a local kaos server at {endpoint} (store: {store})",
            file=sys.stderr,
            flush=True,
        )

    def bar(self, label: str) -> Bar:
        from kaos.client.events import Silent

        return BarProgress(label) if self.narrate else Silent().bar(label)

    def uploading(self, kind: str, folder: Path) -> None:
        if self.narrate:
            echo(f"Submitting {kind} bundle: {folder}")

    def uploaded(self, bundle: Bundle) -> None:
        special = bundle.scanned.special
        if special:  # fifos, sockets, devices: no content to store
            count, first = len(special), special[0]
            warn(
                f"{count} special file{'s' if count > 1 else ''} (fifo, socket or device) left out "
                f"of the {bundle.kind} bundle, first: {first}"
            )
        if self.narrate:
            echo(f" ✔ Setting {bundle.kind} bundle: {bundle.label}\n")

    def sending_manifest(self, path: Path) -> None:
        if self.narrate:
            echo(f"Submitting data manifest: {path}")

    def job_changed(self, job: dict[str, Any]) -> None:
        if self.narrate:
            reason = f" ({job['reason']})" if job["reason"] else ""
            echo(f"{job['kind']} {job['id']}: {job['state']}{reason}")

    def model_trained(self, model: dict[str, Any]) -> None:
        if self.narrate:
            echo(f"model {model['model_id']}: {json.dumps(model['metrics'])}")
