"""Serving's pure parts: MLflow request formats, the follow decision, micro-batching."""

from __future__ import annotations

import io
import json
import math
import threading
import time

import pytest

from kaos.serving import runtime
from kaos.serving.follow import Metric, best
from kaos.serving.formats import RequestError, parse_request
from kaos.serving.process import cpu_set
from kaos.serving.runtime import Batcher, Stats, as_predictions, read_chunked, to_json

J = "application/json"


@pytest.mark.parametrize(
    ("content_type", "body", "features", "rows"),
    [
        (J, {"instances": [[1, 2], [3, 4]]}, None, [[1, 2], [3, 4]]),
        (J, {"instances": [1, 2]}, None, [1, 2]),
        (J, {"inputs": [[1, 2]]}, 2, [[1, 2]]),
        (J, {"inputs": {"a": [1, 2], "b": [3, 4]}}, None, [[1, 3], [2, 4]]),
        (J, {"inputs": {"b": [3], "a": [1]}}, ["a", "b"], [[1, 3]]),
        (J, {"dataframe_split": {"columns": ["b", "a"], "data": [[2, 1]]}}, ["a", "b"], [[1, 2]]),
        (J, {"dataframe_split": {"data": [[1, 2]]}}, ["a", "b"], [[1, 2]]),
        (J, {"dataframe_records": [{"b": 2, "a": 1}, {"a": 3, "b": 4}]}, ["a", "b"],
         [[1, 2], [3, 4]]),
        ("text/csv", "1,2\n3,4.5\n", 2, [[1, 2], [3, 4.5]]),
        ("text/csv; charset=utf-8", "b,a\n2,1\n", ["a", "b"], [[1, 2]]),
        (None, {"instances": [[1]]}, None, [[1]]),
    ],
)  # fmt: skip
def test_every_mlflow_format_gives_rows_in_the_models_column_order(
    content_type, body, features, rows
):
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    assert parse_request(content_type, raw, features) == rows


@pytest.mark.parametrize(
    ("content_type", "body", "features", "status", "says"),
    [
        (J, b"{bad", None, 400, "malformed JSON"),
        (J, b"[1, 2]", None, 400, "must be an object"),
        (J, b'{"rows": []}', None, 400, "expected exactly one of instances"),
        (J, b'{"instances": [], "inputs": []}', None, 400, "got inputs, instances"),
        (J, b'{"instances": []}', None, 400, "holds no rows"),
        (J, b'{"instances": {"a": 1}}', None, 400, "instances must be a JSON list"),
        (J, b'{"instances": [[1, 2, 3]]}', 2, 400, "expected rows of 2 features"),
        (J, b'{"instances": [5]}', 2, 400, "row 0 has a single value"),
        (J, b'{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}', None, 400, "rows of 1"),
        (J, b'{"dataframe_split": [1]}', None, 400, "dataframe_split must be"),
        (J, b'{"dataframe_records": [{"a": 1}, {"b": 2}]}', None, 400, "same columns"),
        (J, b'{"dataframe_records": [{"a": 1}]}', ["a", "b"], 400, "missing columns b"),
        (J, b'{"inputs": {"a": [1], "b": [1, 2]}}', None, 400, "same length"),
        ("text/csv", b"1,2\n3\n", None, 400, "row 1 has 1 values"),
        ("text/csv", b"\xff\xfe", None, 400, "UTF-8"),
        ("application/xml", b"<a/>", None, 415, "unsupported content type 'application/xml'"),
    ],
)  # fmt: skip
def test_bad_requests_get_one_line_saying_what_was_expected(
    content_type, body, features, status, says
):
    with pytest.raises(RequestError) as caught:
        parse_request(content_type, body, features)
    assert caught.value.status == status
    assert says in caught.value.message and "\n" not in caught.value.message


def test_follow_picks_the_best_numeric_value_in_the_metrics_direction():
    models = [("a", {"acc": 0.8, "loss": 0.3}), ("b", {"acc": 0.9, "loss": 0.5}), ("c", {})]
    assert best(Metric.parse("acc"), models) == ("b", 0.9)
    assert best(Metric.parse("-loss"), models) == ("a", 0.3)
    assert best(Metric.parse("acc"), [("x", {"acc": "high"}), ("y", {"acc": True})]) is None
    assert Metric.parse("-loss").better(0.1, 0.3) and not Metric.parse("acc").better(0.5, 0.5)
    with pytest.raises(ValueError):
        Metric.parse("-")


def test_a_diverged_model_with_a_nan_metric_is_never_followed_nor_blocks_a_better_one():
    nan = float("nan")
    diverged = [("nan", {"loss": nan}), ("good", {"loss": 0.5}), ("inf", {"loss": math.inf})]
    assert best(Metric.parse("-loss"), diverged) == ("good", 0.5)
    assert best(Metric.parse("loss"), diverged) == ("good", 0.5)
    assert Metric.parse("-loss").value({"loss": nan}) is None  # a NaN serving model is replaced


def test_predictions_must_be_one_per_row():
    assert as_predictions((1, 2), 2) == [1, 2]
    with pytest.raises(ValueError, match="2 predictions for 3 rows"):
        as_predictions([1, 2], 3)
    with pytest.raises(TypeError, match="not a list"):
        as_predictions(7, 1)


def test_non_finite_predictions_are_answered_as_null_in_strict_json():
    nan, inf = float("nan"), float("inf")
    data = to_json({"predictions": [1.5, nan, inf, -inf, [nan, 2], {"p": (inf,)}]})

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is no JSON")

    assert json.loads(data, parse_constant=refuse) == {
        "predictions": [1.5, None, None, None, [None, 2], {"p": [None]}]
    }
    assert to_json({"predictions": [1.0, "x"]}) == b'{"predictions": [1.0, "x"]}'


def test_batching_gathers_concurrent_requests_into_bounded_calls_and_isolates_a_bad_one():
    calls: list[int] = []

    def predict(rows):
        calls.append(len(rows))
        if "bad" in rows:
            raise ValueError("bad row")
        time.sleep(0.01)
        return [r * 2 for r in rows]

    batcher = Batcher(predict, max_rows=8, max_wait_s=0.05)
    results: dict[int, object] = {}

    def ask(i: int) -> None:
        try:
            results[i] = batcher([i, i])
        except ValueError as exc:
            results[i] = str(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[i] == [2 * i, 2 * i] for i in range(12))
    assert max(calls) <= 8 and len(calls) < 12  # gathered, never over the limit

    calls.clear()
    out: dict[str, object] = {}
    bad = threading.Thread(target=lambda: out.__setitem__("bad", _try(batcher, ["bad"])))
    good = threading.Thread(target=lambda: out.__setitem__("good", _try(batcher, [5])))
    bad.start(), good.start(), bad.join(), good.join()
    assert out == {"bad": "bad row", "good": [10]}


def _try(batcher, rows):
    try:
        return batcher(rows)
    except ValueError as exc:
        return str(exc)


def test_stats_count_requests_errors_and_latency_quantiles():
    stats = Stats()
    for failed in (False, False, True):
        stats.begin()
        stats.end(time.perf_counter(), failed)
    snap = stats.snapshot()
    assert snap["requests"] == 3 and snap["errors"] == 1 and snap["p50_ms"] is not None


def test_a_hanging_predict_times_out_once_and_is_never_sent_again(monkeypatch):
    """A POST that reached the endpoint is not retried on a timeout (even on a reused
    connection): the caller gets a 504 naming the cause, after one wait, not several."""
    import asyncio

    from kaos.errors import EndpointTimeout
    from kaos.serving import forward

    monkeypatch.setattr(forward, "TIMEOUT_S", 0.3)
    received: list[bytes] = []

    async def endpoint(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            if line.startswith(b"POST"):
                received.append(line)
                if len(received) == 1:  # the first answers (its connection is kept)
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                # later ones hang, as a predict stuck in a loop

    async def scenario() -> None:
        server = await asyncio.start_server(endpoint, "127.0.0.1", 0)
        address = server.sockets[0].getsockname()[:2]
        forwarder = forward.Forwarder()
        assert (await forwarder.request(address, "POST", "/invocations", b"", "x")).status == 200
        with pytest.raises(EndpointTimeout, match=r"no answer in 0\.3 s") as raised:
            await forwarder.request(address, "POST", "/invocations", b"", "x")
        assert raised.value.http_status == 504
        await asyncio.sleep(0.3)
        forwarder.close()
        server.close()

    asyncio.run(scenario())
    assert len(received) == 2


def test_cpu_sets_round_up_to_whole_cpus_and_spread_endpoints_over_the_machine():
    assert cpu_set(None, 0, range(4)) == ()
    assert cpu_set(4, 0, range(4)) == ()  # all of them: no limit
    assert cpu_set(0.5, 0, range(4)) == (0,)
    assert cpu_set(1, 5, range(4)) == (1,)
    assert cpu_set(2.5, 3, [0, 2, 4, 6]) == (0, 2, 6)


def test_a_body_nested_too_deeply_is_a_bad_request_not_a_predict_failure():
    body = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(RequestError) as caught:
        parse_request(J, body, None)
    assert caught.value.status == 400 and "nested" in caught.value.message


def test_a_predict_that_exits_fails_its_batch_and_the_batcher_keeps_answering():
    def predict(rows):
        if "exit" in rows:
            raise SystemExit(3)
        return [r * 2 for r in rows]

    batcher = Batcher(predict, max_rows=8, max_wait_s=0.01)
    answers: list[object] = []

    def ask(rows: list[object]) -> None:
        try:
            answers.append(batcher(rows))
        except SystemExit as exc:
            answers.append(f"exit {exc.code}")

    for rows in (["exit"], [4]):
        asker = threading.Thread(target=ask, args=(rows,), daemon=True)
        asker.start()
        asker.join(5)
    assert answers == ["exit 3", [8]]


def test_a_chunked_body_is_read_whole_and_refused_beyond_the_limit():
    sent = io.BytesIO(b'5\r\n{"ins\r\n4;ext=1\r\ntanc\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT')
    assert read_chunked(sent, 1 << 20) == b'{"instanc'
    assert sent.read() == b"NEXT"  # the next request on the connection starts here
    with pytest.raises(runtime.RequestError) as caught:
        read_chunked(io.BytesIO(b"400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n"), 100)
    assert caught.value.status == 413
    with pytest.raises(runtime.RequestError, match="malformed chunked body"):
        read_chunked(io.BytesIO(b"zz\r\n"), 100)
