"""The dashboard in a real headless Chromium, against a real kaos server holding the seed
walkthrough's three models (poly kernel, linear kernel, linear with more data)."""

from __future__ import annotations

import io
import secrets
import tarfile

import httpx
import pytest

from tests.browser import browser_unavailable, chromium, wait_for, wait_until
from tests.cli import Cli
from tests.conftest import KaosServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(browser_unavailable() is not None, reason=str(browser_unavailable())),
]
SOURCE, DATA = "templates/mnist/model-train", "templates/mnist/data"
TRAIN = f"{SOURCE}/mnist/model/train"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("dashboard") / "home"
    home.mkdir()
    server = KaosServer(home)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def walkthrough(server, tmp_path_factory):
    """The seed's three deploys, each waited for; the models in deploy order."""
    work = tmp_path_factory.mktemp("walkthrough")
    cli = Cli(work / "client-home", work, server.url)
    cli.ok("workspace", "create", "-n", "mnist")
    cli.ok("template", "get", "--name", "mnist")
    models = []

    def newest() -> dict:
        (model,) = cli.ok("train", "info", "-i", "0", "--json").json()["models"]
        return model

    cli.ok("train", "deploy", "-s", SOURCE, "-d", DATA, "--wait")
    models.append(newest())
    train = work / TRAIN
    train.write_text(train.read_text().replace("KERNEL = 'poly'", "KERNEL = 'linear'"))
    cli.ok("train", "deploy", "-s", SOURCE, "--wait")
    models.append(newest())
    extra = (work / "templates/mnist/more-data/training-extra.csv.gz").read_bytes()
    with open(work / DATA / "features/training/training.csv.gz", "ab") as f:
        f.write(extra)
    cli.ok("train", "deploy", "-d", DATA, "--wait")
    models.append(newest())
    return cli, work, models


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def chart_points(driver) -> list[tuple[str, float, bool]]:
    return [
        (p[0], float(p[1]), p[2] == "1")
        for p in driver.execute_script(
            "return [...document.querySelectorAll('#progress-chart circle.point')]"
            ".map(c => [c.dataset.modelId, c.dataset.value, c.dataset.best])"
        )
    ]


def table_rows(driver, metric: str) -> list[tuple[str, str]]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#models-table tbody tr')].map(r => "
        f"[r.dataset.modelId, r.querySelector('td[data-metric=\"{metric}\"]').textContent])"
    )


def test_progress_chart_shows_the_three_models_in_deploy_order(server, walkthrough, browser):
    _cli, _work, models = walkthrough
    browser.get(f"{server.url}/#/w/mnist")
    wait_for(browser, "#progress-chart svg[data-drawn]")
    assert browser.find_element("css selector", "#metric").get_attribute("value") == "accuracy_test"
    points = chart_points(browser)
    assert [(m, v) for m, v, _ in points] == [
        (m["model_id"], m["metrics"]["accuracy_test"]) for m in models
    ]
    values = [m["metrics"]["accuracy_test"] for m in models]
    assert [best for *_, best in points] == [
        v > max(values[:k], default=-1) for k, v in enumerate(values)
    ]
    labels = browser.execute_script(
        "return [...document.querySelectorAll('#progress-chart .point-label')]"
        ".map(t => t.textContent)"
    )
    assert labels == [m["model_id"] for m in models]

    # hovering a point says what changed from the model before it
    from selenium.webdriver.common.action_chains import ActionChains

    second = browser.find_elements("css selector", "#progress-chart circle.point")[1]
    ActionChains(browser).move_to_element(second).perform()
    tip = wait_until(browser, lambda d: d.find_element("css selector", "#tooltip").text)
    assert models[1]["model_id"] in tip
    assert f"source /mnist:{models[0]['model_id'][:5]} -> /mnist:{models[1]['model_id'][:5]}" in tip


def test_models_table_ranks_by_the_chosen_metric(server, walkthrough, browser):
    _cli, _work, models = walkthrough
    browser.get(f"{server.url}/#/w/mnist")
    wait_for(browser, "#models-table")
    by_test = sorted(models, key=lambda m: -m["metrics"]["accuracy_test"])
    assert [r[0] for r in table_rows(browser, "accuracy_test")] == [m["model_id"] for m in by_test]

    # choosing another metric re-ranks the table by it
    browser.execute_script(
        "const s = document.querySelector('#metric'); s.value = 'accuracy_train';"
        "s.dispatchEvent(new Event('change'))"
    )
    wait_until(
        browser,
        lambda d: (
            d.find_element("css selector", "#models")
            .get_attribute("innerHTML")
            .count("accuracy_train ↓")
        ),
    )
    wait_until(
        browser,
        lambda d: (
            d.execute_script(
                "return document.querySelector('#models-table').closest('[data-sort]').dataset.sort"
            )
            == "-metrics.accuracy_train"
        ),
    )
    shown = [(m, float(v)) for m, v in table_rows(browser, "accuracy_train")]
    values = {m["model_id"]: m["metrics"]["accuracy_train"] for m in models}
    assert [v for _, v in shown] == sorted((v for _, v in shown), reverse=True)
    assert {m for m, _ in shown} == set(values)  # ties may come in any order
    assert all(abs(values[m] - v) < 1e-3 for m, v in shown)
    # a filter on a metric keeps only the models that pass it
    box = browser.find_element("css selector", "#model-filter")
    box.send_keys("metrics.accuracy_test>=0.91\n")
    keep = {m["model_id"] for m in models if m["metrics"]["accuracy_test"] >= 0.91}
    wait_until(browser, lambda d: {r[0] for r in table_rows(d, "accuracy_test")} == keep)
    box.clear()
    box.send_keys("\n")
    wait_until(browser, lambda d: len(table_rows(d, "accuracy_test")) == 3)
    # "only columns that differ" hides what every model shares
    differ = browser.find_element("css selector", "#only-differ")
    headers = lambda: browser.execute_script(  # noqa: E731
        "return [...document.querySelectorAll('#models-table th')].map(t => t.textContent)"
    )
    before = headers()
    differ.click()
    after = headers()
    assert len(after) <= len(before) and any(h.startswith("accuracy_test") for h in after)


def test_model_page_shows_provenance_diff_and_logs(server, walkthrough, browser):
    _cli, _work, models = walkthrough
    linear = models[1]
    browser.get(f"{server.url}/#/m/{linear['model_id']}")
    wait_for(browser, "#provenance svg")
    text = browser.execute_script("return document.querySelector('#provenance svg').textContent")
    assert f"/mnist:{linear['model_id'][:5]}" in text
    assert f"/features:{linear['model_id'][6:11]}" in text
    assert linear["model_id"] in text and "train job" in text
    assert f"build-train-mnist:{linear['model_id'][:5]}" in text
    metrics = browser.find_element("css selector", "#model-metrics").text
    assert f"{linear['metrics']['accuracy_test']:.4g}"[:5] in metrics
    wait_until(
        browser,
        lambda d: "finished" in d.page_source and d.find_element("css selector", "#logs").text,
    )
    assert "training on" in browser.find_element("css selector", "#logs").text

    against = browser.find_element("css selector", "#diff-against")
    assert against.get_attribute("value") == models[0]["model_id"]  # the previous model
    has_diff = "/models/{model_id}/diff" in httpx.get(server.url + "/openapi.json").json()["paths"]
    if has_diff:
        wait_until(
            browser, lambda d: "KERNEL = 'linear'" in d.find_element("css selector", "#diff").text
        )
        assert "KERNEL = 'poly'" in browser.find_element("css selector", "#diff").text
    else:
        wait_for(browser, "#diff-unavailable")


def test_archives_stream_the_models_exact_trees(server, walkthrough):
    _cli, _work, models = walkthrough
    model_id = models[1]["model_id"]
    prefix = model_id.replace(":", "-")
    with httpx.stream("GET", f"{server.url}/models/{model_id}/archive/source") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-tar"
        body = response.read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.getmember(f"{prefix}-source/mnist/model/train")
        assert member.mode == 0o755
        assert b"KERNEL = 'linear'" in tar.extractfile(member).read()
    with tarfile.open(
        fileobj=io.BytesIO(httpx.get(f"{server.url}/models/{model_id}/archive/model").content)
    ) as tar:
        assert f"{prefix}-model/metrics/metrics.json" in tar.getnames()
    assert httpx.get(f"{server.url}/models/{model_id}/archive/secrets").status_code == 422
    assert httpx.get(f"{server.url}/models/00000_00000:000000/archive/data").status_code == 404


def test_a_running_jobs_state_changes_on_the_page_without_reload(server, walkthrough, browser):
    cli, work, _models = walkthrough
    cli.ok("workspace", "create", "-n", "live")
    train = work / TRAIN
    train.write_text(
        train.read_text().replace(
            "def main(output_dir: str) -> None:",
            "def main(output_dir: str) -> None:\n    import time; time.sleep(6)",
        )
    )
    browser.get(f"{server.url}/#/w/live")
    wait_for(browser, "#jobs")
    browser.execute_script("window.kaosNoReload = 1")
    cli.ok("train", "deploy", "-s", SOURCE, "-d", DATA)
    rows = "[...document.querySelectorAll('#jobs-table tr[data-job-id]')]"
    running = wait_until(
        browser,
        lambda d: d.execute_script(
            f"return {rows}.filter(r => r.dataset.kind === 'train' && "
            "['JOB_STARTING', 'JOB_RUNNING'].includes(r.dataset.state)).map(r => r.dataset.jobId)"
        ),
        timeout=120,
    )
    # its logs follow it live on the job's page, then say it finished
    browser.execute_script(f"location.hash = '#/w/live/job/{running[0]}'")
    wait_until(browser, lambda d: d.find_element("css selector", "#logs-state").text == "live")
    wait_until(
        browser,
        lambda d: d.find_element("css selector", "#logs-state").text == "finished",
        timeout=180,
    )
    assert "training on" in browser.find_element("css selector", "#logs").text
    browser.execute_script("location.hash = '#/w/live'")
    wait_until(
        browser,
        lambda d: d.execute_script(
            f"return {rows}.length === 2 && {rows}.every(r => r.dataset.state === 'JOB_SUCCESS')"
        ),
        timeout=60,
    )
    done = browser.execute_script(f"return {rows}.map(r => r.dataset.jobId)")
    assert set(running) <= set(done)
    assert browser.execute_script("return window.kaosNoReload") == 1
    wait_until(browser, lambda d: len(chart_points(d)) == 1, timeout=10)


def test_a_token_protected_server_shows_only_the_prompt_until_a_valid_token(tmp_path):
    secret = secrets.token_hex(16)
    home = tmp_path / "home"
    home.mkdir()
    server = KaosServer(home, ["--token", f"alice:{secret}"])
    try:
        httpx.post(
            server.url + "/workspaces",
            json={"name": "private"},
            headers={"Authorization": f"Bearer {secret}"},
        ).raise_for_status()
        assert httpx.get(server.url + "/ui/js/app.js").status_code == 200  # code, no data
        assert httpx.get(server.url + "/workspaces").status_code == 401
        with chromium() as driver:
            driver.get(server.url + "/#/w/private")
            form = wait_for(driver, "#token-form")
            main = driver.find_element("css selector", "#main")
            assert (
                driver.execute_script("return document.querySelector('#main').children.length") == 1
            )
            assert (
                "private" not in main.text
                and "private" not in driver.find_element("css selector", "#crumbs").text
            )
            driver.find_element("css selector", "#token").send_keys("not-the-token")
            form.submit()
            wait_until(
                driver, lambda d: "refused" in d.find_element("css selector", "#token-error").text
            )
            assert "private" not in driver.find_element("css selector", "#main").text
            assert driver.execute_script("return sessionStorage.getItem('kaos.token')") is None

            token = driver.find_element("css selector", "#token")
            token.clear()
            token.send_keys(secret)
            driver.find_element("css selector", "#token-form").submit()
            wait_for(driver, "#progress-chart svg[data-drawn]")
            assert driver.find_element("css selector", "h1").text == "private"
            assert driver.execute_script("return sessionStorage.getItem('kaos.token')") == secret
            assert driver.get_cookies() == []
            driver.refresh()  # the tab keeps its token
            wait_for(driver, "#progress-chart svg[data-drawn]")
    finally:
        server.stop()


def test_kaos_ui_prints_the_dashboard_url_of_the_current_workspace(server, walkthrough):
    cli, _work, _models = walkthrough
    cli.ok("workspace", "set", "-n", "mnist")
    url = cli.ok("ui").out.strip()
    assert url == f"{server.url}/#/w/mnist"
    assert cli.ok("ui", "--json", "-w", "other").json() == {"url": f"{server.url}/#/w/other"}
    page = httpx.get(url)
    assert page.status_code == 200 and '<script type="module" src="/ui/js/app.js">' in page.text
