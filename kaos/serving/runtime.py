"""The endpoint process: loads `model/predict.py` and answers MLflow-style HTTP requests.

Run by the Python of the model's own environment, as a plain script (standard library only),
so serving installs nothing into that environment:

    <env>/bin/python -I -u runtime.py --code CODE_DIR --model MODEL_DIR --port PORT --model-id ID

CODE_DIR is the source bundle's `model/` folder (working directory; holds `predict.py` with
`load(model_dir)` and `predict(model, rows)`), MODEL_DIR what the train script wrote under
`<output>/model/`. Routes: POST /invocations, GET /ping, /health (200 once loaded), /version
(the model id, and the pid: which replica answered), /stats (requests, errors, latency, for
`kaos serve info`). A failing `predict` answers 500 and is logged with its traceback; the
process stays up. SIGTERM stops accepting, lets requests in flight finish, then exits.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from formats import RequestError, parse_request

DRAIN_S = 30.0
MAX_BODY = 64 << 20  # a request body beyond this is refused (413) before it is read
Predict = Callable[[list[Any]], list[Any]]


class Stats:
    """Counters and recent latencies, read by `kaos serve info` through /stats."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.errors = 0
        self.active = 0
        self.latencies: deque[float] = deque(maxlen=4096)

    def begin(self) -> None:
        with self.lock:
            self.active += 1

    def end(self, started: float, failed: bool) -> None:
        with self.lock:
            self.active -= 1
            self.requests += 1
            self.errors += int(failed)
            self.latencies.append((time.perf_counter() - started) * 1000)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            ordered = sorted(self.latencies)
            return {
                "requests": self.requests,
                "errors": self.errors,
                "p50_ms": _quantile(ordered, 0.50),
                "p99_ms": _quantile(ordered, 0.99),
            }


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def as_predictions(output: Any, rows: int) -> list[Any]:
    """`predict`'s answer as a JSON-ready list of one prediction per row."""
    if hasattr(output, "tolist"):
        output = output.tolist()
    if isinstance(output, tuple):
        output = list(output)
    if not isinstance(output, list):
        raise TypeError(f"predict returned {type(output).__name__}, not a list of predictions")
    if len(output) != rows:
        raise ValueError(f"predict returned {len(output)} predictions for {rows} rows")
    return output


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars (an array's item() raises)
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(payload: Any) -> bytes:
    """Strict JSON: NaN and +-Infinity (which JSON has no numbers for) become null, as pandas'
    to_json and JavaScript write them, so every client's parser reads the answer."""
    try:
        return json.dumps(payload, default=_jsonable, allow_nan=False).encode()
    except ValueError:  # a non-finite float somewhere: the slow path, only then
        return json.dumps(_finite(payload), default=_jsonable, allow_nan=False).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "tolist") or hasattr(value, "item"):  # numpy arrays and scalars
        return _finite(_jsonable(value))
    return value


class _Pending:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows
        self.done = threading.Event()
        self.result: list[Any] = []
        self.error: BaseException | None = None


class Batcher:
    """Gathers concurrent requests into one `predict` call of at most `max_rows` rows, waiting
    at most `max_wait_s` after the first; a failing batch is retried request by request, so
    one bad request fails alone."""

    def __init__(self, predict: Predict, max_rows: int, max_wait_s: float) -> None:
        self._predict = predict
        self._max_rows = max_rows
        self._max_wait_s = max_wait_s
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._carry: _Pending | None = None
        threading.Thread(target=self._loop, name="batcher", daemon=True).start()

    def __call__(self, rows: list[Any]) -> list[Any]:
        pending = _Pending(rows)
        self._queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _loop(self) -> None:
        while True:
            first = self._carry or self._queue.get()
            self._carry = None
            batch, size = [first], len(first.rows)
            deadline = time.monotonic() + self._max_wait_s
            while size < self._max_rows:
                remaining = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=remaining) if remaining > 0 else None
                except queue.Empty:
                    nxt = None
                if nxt is None:
                    break
                if size + len(nxt.rows) > self._max_rows:
                    self._carry = nxt
                    break
                batch.append(nxt)
                size += len(nxt.rows)
            self._run(batch)

    def _run(self, batch: list[_Pending]) -> None:
        # BaseException: a predict calling sys.exit must fail its requests, not end this
        # thread (every later request would then wait forever)
        try:
            rows = [row for pending in batch for row in pending.rows]
            out = self._predict(rows)
            start = 0
            for pending in batch:
                pending.result = out[start : start + len(pending.rows)]
                start += len(pending.rows)
        except BaseException as exc:
            if len(batch) == 1:
                batch[0].error = exc
            else:
                for pending in batch:
                    try:
                        pending.result = self._predict(pending.rows)
                    except BaseException as single:
                        pending.error = single
        for pending in batch:
            pending.done.set()


class Endpoint:
    """The loaded model and what the HTTP handler needs from it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.model_id = args.model_id
        self.stats = Stats()
        os.chdir(args.code)
        sys.path.insert(0, args.code)
        spec = importlib.util.spec_from_file_location(
            "predict", os.path.join(args.code, "predict.py")
        )
        if spec is None or spec.loader is None:
            raise SystemExit(f"kaos-serve: cannot load {args.code}/predict.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["predict"] = module
        spec.loader.exec_module(module)
        self.features = getattr(module, "FEATURES", None)
        started = time.perf_counter()
        model = module.load(args.model)
        print(f"kaos-serve: model {self.model_id} loaded in {time.perf_counter() - started:.2f}s")

        def predict(rows: list[Any]) -> list[Any]:
            return as_predictions(module.predict(model, rows), len(rows))

        self.predict: Predict = predict
        if args.max_batch_size > 1:
            self.predict = Batcher(predict, args.max_batch_size, args.max_latency_ms / 1000)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kaos-serve"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stall
    endpoint: Endpoint  # set on the class before serving

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path in ("/ping", "/health"):
            self._send(200, {"status": "ok"})
        elif path == "/version":
            self._send(200, {"model_id": self.endpoint.model_id, "pid": os.getpid()})
        elif path == "/stats":
            self._send(200, self.endpoint.stats.snapshot())
        elif path == "/invocations":
            self._send(405, _error("METHOD_NOT_ALLOWED", "send predictions with POST /invocations"))
        else:
            self._send(404, _error("NOT_FOUND", f"no route {path}: use /invocations or /ping"))

    def do_POST(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path in ("/ping", "/health", "/version"):
            self._send(405, _error("METHOD_NOT_ALLOWED", f"use GET {path}"))
            return
        if path != "/invocations":
            self._send(404, _error("NOT_FOUND", f"no route {path}: POST to /invocations"))
            return
        stats = self.endpoint.stats
        started = time.perf_counter()
        stats.begin()
        failed = True
        try:
            body = self._body()
            rows = parse_request(self.headers.get("Content-Type"), body, self.endpoint.features)
            predictions = self.endpoint.predict(rows)
            self._send(200, {"predictions": predictions})
            failed = False
        except RequestError as exc:
            self._send(exc.status, _error("BAD_REQUEST", exc.message))
        except (Exception, SystemExit) as exc:  # a predict calling sys.exit: a 500, as any
            message = f"predict failed: {type(exc).__name__}: {exc}".splitlines()[0]
            print(f"kaos-serve: {message}", file=sys.stderr)
            traceback.print_exc()
            self._send(500, _error("INTERNAL_ERROR", message))
        finally:
            stats.end(started, failed)

    def _body(self) -> bytes:
        """The request body, sent with a Content-Length or chunked (streaming clients)."""
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        try:
            if chunked:
                return read_chunked(self.rfile, MAX_BODY)
            size = _content_length(self.headers.get("Content-Length"))
            if size > MAX_BODY:
                raise RequestError(413, f"request body over {MAX_BODY >> 20} MiB: send fewer rows")
            return self.rfile.read(size)
        except RequestError:
            self.close_connection = True  # what is left of the body must not be read as a request
            raise

    def _send(self, status: int, payload: Any) -> None:
        try:
            data = to_json(payload)
        except (TypeError, ValueError) as exc:
            status, data = 500, json.dumps(_error("INTERNAL_ERROR", f"predictions: {exc}")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the errors that matter


def read_chunked(rfile: Any, limit: int) -> bytes:
    """A `Transfer-Encoding: chunked` body (RFC 9112 7.1), refused beyond `limit` bytes."""
    body = bytearray()
    while True:
        line = rfile.readline(1024)
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise RequestError(400, "malformed chunked body: send a Content-Length") from None
        if size == 0:
            while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(body)
        if size < 0 or len(body) + size > limit:
            raise RequestError(413, f"request body over {limit >> 20} MiB: send fewer rows")
        body += rfile.read(size)
        rfile.readline(1024)  # the CRLF after each chunk


def _content_length(value: str | None) -> int:
    try:
        size = int(value or 0)
    except ValueError:
        size = -1
    if size < 0:
        raise RequestError(400, f"invalid Content-Length {value!r}")
    return size


def _error(code: str, message: str) -> dict[str, str]:
    return {"error_code": code, "message": message}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--max-batch-size", type=int, default=0)
    parser.add_argument("--max-latency-ms", type=float, default=5.0)
    args = parser.parse_args(argv)
    Handler.endpoint = Endpoint(args)
    try:
        server = ThreadingHTTPServer((args.host, args.port), Handler)
    except OSError as exc:
        raise SystemExit(f"kaos-serve: cannot listen on {args.host}:{args.port}: {exc}") from None
    server.daemon_threads = True

    def stop(_signum: int, _frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"kaos-serve: listening on {args.host}:{args.port}", flush=True)
    server.serve_forever(poll_interval=0.1)
    _drain(Handler.endpoint.stats)


def _drain(stats: Stats) -> None:
    """After accepting stopped: let requests in flight finish (bounded), then exit."""
    deadline = time.monotonic() + DRAIN_S
    while stats.active and time.monotonic() < deadline:
        time.sleep(0.01)
    print("kaos-serve: stopped", flush=True)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
