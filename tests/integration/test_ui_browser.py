"""The dashboard at /ui in a real headless Chromium (selenium + Debian's chromium-driver) against
a real API, worker and redis-server: the overview shows what /queues returns, jobs move to
completed and dead live (no reload), a dead job is retried to completion, a running one is
cancelled, and with API_TOKEN set the UI refuses a wrong token and works with the right one.

With JQ_UI_SCREENSHOTS=1 the run writes the README's screenshots (docs/ui-*.png)."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.cluster.redis_server import RedisServer
from tests.integration.worker_support import WorkerProcess, start_worker
from tests.support.services import ApiProcess
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
TOKEN = "ui-test-token"
BROWSER_WAIT = 20.0

# A task that fails until its marker file exists: dead first, then retried to completion.
UI_TASKS = textwrap.dedent(
    '''
    """Tasks of the dashboard's browser test."""
    import os

    from jobqueue_worker import task


    @task("until_file")
    def until_file(payload):
        if not os.path.exists(payload["path"]):
            raise RuntimeError(f"{payload['path']} does not exist yet")
        return {"found": payload["path"]}
    '''
)


def browser_program(name: str) -> str:
    """A program of the chromium / chromium-driver packages (hack/host-tools.txt): never a skip."""
    path = shutil.which(name)
    assert path, f"{name} is not on PATH: `make deps` installs it (hack/host-tools.txt)"
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = browser_program("chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(browser_program("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """docs/ with JQ_UI_SCREENSHOTS=1 (to commit them), else a temp dir."""
    return REPO / "docs" if os.environ.get("JQ_UI_SCREENSHOTS") == "1" else tmp_path


def until(what: str, probe: Callable[[], Any], timeout: float = BROWSER_WAIT) -> Any:
    """`wait_for`, tolerating elements replaced by a refresh between find and read."""
    return wait_for(
        what, probe, timeout, tolerate=(StaleElementReferenceException, WebDriverException)
    )


def text_of(browser: webdriver.Chrome, css: str) -> str | None:
    """The rendered text of the first match, read in one step (a redraw cannot intervene)."""
    text: str | None = browser.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : null", css
    )
    return text


def click(browser: webdriver.Chrome, css: str) -> None:
    """Click the first match, finding it again if a redraw replaced it meanwhile."""

    def clicked() -> bool:
        browser.find_element(By.CSS_SELECTOR, css).click()
        return True

    until(css, clicked)


def confirm(browser: webdriver.Chrome) -> None:
    until(
        "the confirmation",
        lambda: browser.find_element(By.ID, "confirm").get_attribute("open") is not None,
    )
    browser.find_element(By.ID, "confirm-ok").click()


def job_status(http: httpx.Client, job_id: str) -> str:
    status: str = http.get(f"/jobs/{job_id}").json()["status"]
    return status


def severe_errors(browser: webdriver.Chrome) -> list[str]:
    """The console's errors, CSP violations included, apart from expected HTTP 401s."""
    return [
        e["message"]
        for e in browser.get_log("browser")  # type: ignore[no-untyped-call]
        if e["level"] == "SEVERE" and "status of 401" not in e["message"]
    ]


@pytest.fixture(scope="module")
def queue_name() -> str:
    return f"test/ui-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def api(
    redis_server: RedisServer, queue_name: str, browser: webdriver.Chrome
) -> Iterator[ApiProcess]:
    """One API process for the module, behind a bearer token, with a worker pool `gpu` whose
    queue takes the `resize` jobs (no worker serves it here: they stay ready)."""
    env = {
        "REDIS_URL": redis_server.url,
        "QUEUE_NAME": queue_name,
        "API_TOKEN": TOKEN,
        "JOB_ROUTES": json.dumps({"resize": f"{queue_name}/gpu"}),
    }
    proc = ApiProcess(env).start()
    yield proc
    browser.get("about:blank")  # closes the page's /events stream, which a drain waits for
    proc.cleanup()


@pytest.fixture
def http(api: ApiProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=api.url, headers=headers, timeout=10) as client:
        yield client


def login_open(browser: webdriver.Chrome) -> bool:
    return browser.find_element(By.ID, "login").get_attribute("open") is not None


def sign_in(browser: webdriver.Chrome, token: str) -> None:
    """Type `token` into the login form (which must be showing) and submit it."""
    until("the login form", lambda: login_open(browser))
    field = browser.find_element(By.ID, "login-token")
    field.clear()
    field.send_keys(token)
    browser.find_element(By.ID, "login-submit").click()


async def test_overview_live_updates_retry_and_cancel(
    browser: webdriver.Chrome,
    api: ApiProcess,
    http: httpx.Client,
    redis_url: str,
    queue_name: str,
    tmp_path: Path,
    workers: list[WorkerProcess],
    screenshots: Path,
) -> None:
    # Jobs that stay put (no worker yet): ready by priority, and delayed ones.
    waiting = [{"type": "email", "priority": p} for p in ("high", "high", "normal", "low")]
    later = [{"type": "email", "delay_seconds": 3600}] * 2
    pool = [{"type": "resize", "priority": "low"}]
    assert http.post("/jobs:batch", json={"jobs": waiting + later + pool}).status_code == 202

    browser.get(f"{api.url}/ui")
    assert browser.current_url == f"{api.url}/ui/"
    if browser.execute_script("return sessionStorage.getItem('jobqueue.token')") is None:
        sign_in(browser, TOKEN)
    card = f'[data-queue="{queue_name}"]'
    expected = http.get("/queues").json()["queues"]
    mine = next(q for q in expected if q["name"] == queue_name)
    shown = {
        "ready.high": str(mine["ready"]["high"]),
        "ready.normal": str(mine["ready"]["normal"]),
        "ready.low": str(mine["ready"]["low"]),
        "in_flight": str(mine["in_flight"]),
        "delayed": str(mine["delayed"]),
        "dead": str(mine["dead"]),
    }
    assert shown == {
        "ready.high": "2",
        "ready.normal": "1",
        "ready.low": "1",
        "in_flight": "0",
        "delayed": "2",
        "dead": "0",
    }
    until(
        "the overview showing /queues' numbers",
        lambda: all(text_of(browser, f'{card} [data-field="{k}"]') == v for k, v in shown.items()),
    )
    until("the live indicator", lambda: text_of(browser, "#live") == "live")
    gpu = f'[data-queue="{queue_name}/gpu"]'
    assert text_of(browser, f"{gpu} .pool") == "pool gpu"
    assert text_of(browser, f'{gpu} [data-field="ready.low"]') == "1"
    browser.execute_script("window.__notReloaded = true")

    # A worker, then 50 jobs: 40 complete, 10 fail into the dead-letter queue.
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "ui_tasks.py").write_text(UI_TASKS)
    marker = tmp_path / f"marker-{uuid.uuid4().hex}"
    await start_worker(
        workers,
        redis_url,
        queue_name,
        tasks_dir,
        tasks_module="examples.tasks,ui_tasks",
        worker_concurrency=8,
    )
    browser.get(f"{api.url}/ui/#/jobs?state=completed&limit=100")
    browser.execute_script("window.__notReloaded = true")
    ok = [{"type": "email", "payload": {"to": f"user{i}@example.com"}} for i in range(40)]
    bad = [
        {"type": "until_file", "payload": {"path": str(marker)}, "max_retries": 0}
        for _ in range(10)
    ]
    accepted = http.post("/jobs:batch", json={"jobs": ok + bad}).json()["job_ids"]
    done_ids, dead_ids = set(accepted[:40]), accepted[40:]

    def completed_rows() -> set[str]:
        rows = browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr[data-status=completed]")
        return {r.get_attribute("data-job-id") or "" for r in rows}

    until("40 jobs completed in the list", lambda: done_ids <= completed_rows())
    click(browser, '[data-nav="overview"]')
    until(
        "10 dead on the overview", lambda: text_of(browser, f'{card} [data-field="dead"]') == "10"
    )
    assert browser.execute_script("return window.__notReloaded") is True

    # A dead job: its error and attempts, then retried after its cause is fixed.
    click(browser, '[data-nav="dlq"]')
    dead_id = dead_ids[0]
    click(browser, f'#jobs tr[data-job-id="{dead_id}"] a')
    until("the dead job's page", lambda: text_of(browser, "#job-status") == "dead")
    assert "does not exist yet" in (text_of(browser, "#job-error") or "")
    assert text_of(browser, '[data-field="attempts"]') == "1 of 1 (max retries 0)"
    assert str(marker) in (text_of(browser, "#job-payload") or "")
    browser.save_screenshot(str(screenshots / "ui-job.png"))
    marker.touch()
    click(browser, "#retry-job")
    confirm(browser)
    until("the retried job completed", lambda: text_of(browser, "#job-status") == "completed")
    assert str(marker) in (text_of(browser, "#job-result") or "")
    assert job_status(http, dead_id) == "completed"

    # A running job cancelled from its page; the cancel is confirmed first.
    slow = http.post("/jobs", json={"type": "slow", "payload": {"seconds": 60}}).json()["job_id"]
    wait_for("the slow job running", lambda: job_status(http, slow) == "processing", 20)
    browser.get(f"{api.url}/ui/#/job/{slow}")
    until("the running job's page", lambda: text_of(browser, "#job-status") == "processing")
    click(browser, "#cancel-job")
    browser.find_element(By.ID, "confirm-cancel").click()  # said no: nothing happens
    assert job_status(http, slow) == "processing"
    click(browser, "#cancel-job")
    confirm(browser)
    until("the job cancelled", lambda: text_of(browser, "#job-status") == "cancelled")
    assert job_status(http, slow) == "cancelled"

    def in_flight() -> int:
        queues = http.get("/queues").json()["queues"]
        return int(next(q for q in queues if q["name"] == queue_name)["in_flight"])

    wait_for("the lease released", lambda: in_flight() == 0, 10)
    click(browser, '[data-nav="overview"]')
    until("9 dead on the overview", lambda: text_of(browser, f'{card} [data-field="dead"]') == "9")
    browser.save_screenshot(str(screenshots / "ui-overview.png"))

    # The dead-letter list: pages, a filter, delete one, retry all, purge.
    def listed() -> list[str]:
        rows = browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
        return [r.get_attribute("data-job-id") or "" for r in rows]

    browser.get(f"{api.url}/ui/#/jobs?state=dead&limit=5")
    first = until("a first page of 5", lambda: (ids := listed()) and len(ids) == 5 and ids)
    click(browser, "#next-page")
    second = until("a second page of 4", lambda: (ids := listed()) and len(ids) == 4 and ids)
    assert set(first) | set(second) == set(dead_ids[1:])
    click(browser, "#prev-page")
    until("the first page again", lambda: listed() == first)
    browser.find_element(By.CSS_SELECTOR, "#filters input[name=type]").send_keys("email")
    click(browser, "#filters button[type=submit]")
    until("no dead email job", lambda: text_of(browser, "#no-jobs") == "No dead jobs.")

    gone = dead_ids[1]
    browser.get(f"{api.url}/ui/#/job/{gone}")
    click(browser, "#delete-job")
    confirm(browser)
    until("the job deleted", lambda: http.get(f"/jobs/{gone}").status_code == 404)
    until("back on the dead list", lambda: gone not in listed() and len(listed()) == 8)
    click(browser, "#retry-all")
    confirm(browser)
    until("retried 8", lambda: text_of(browser, "#toast") == "retried 8")
    until("the dead list empty", lambda: text_of(browser, "#no-jobs") == "No dead jobs.")
    again = [{"type": "fail", "max_retries": 0}] * 2
    http.post("/jobs:batch", json={"jobs": again})
    until("2 dead again", lambda: len(listed()) == 2)
    click(browser, "#purge")
    confirm(browser)
    until("purged 2", lambda: text_of(browser, "#toast") == "purged 2")
    assert http.get("/dlq").json()["total"] == 0
    assert severe_errors(browser) == []


async def test_token_login_refuses_a_wrong_token(
    browser: webdriver.Chrome, api: ApiProcess, queue_name: str
) -> None:
    page = httpx.get(f"{api.url}/ui/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "set-cookie" not in page.headers
    assert httpx.get(f"{api.url}/queues").status_code == 401

    browser.get(f"{api.url}/ui/")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    sign_in(browser, "wrong-token")
    until("the refusal", lambda: text_of(browser, "#login-error") == "The API refused this token.")
    assert login_open(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "[data-queue]") == []
    assert browser.execute_script("return sessionStorage.getItem('jobqueue.token')") is None

    sign_in(browser, TOKEN)
    until(
        "the overview",
        lambda: browser.find_elements(By.CSS_SELECTOR, f'[data-queue="{queue_name}"]'),
    )
    assert not login_open(browser)
    assert browser.execute_script("return sessionStorage.getItem('jobqueue.token')") == TOKEN
    assert browser.execute_script("return document.cookie") == ""
    until("the live indicator", lambda: text_of(browser, "#live") == "live")

    # What the API returns is shown as text, never run as HTML.
    markup = "<img src=x id=injected onerror=window.__pwned=1>"
    job = {"type": f"x{markup}", "payload": {"html": markup}, "delay_seconds": 3600}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    job_id = httpx.post(f"{api.url}/jobs", json=job, headers=headers).json()["job_id"]
    browser.get(f"{api.url}/ui/#/job/{job_id}")
    until("the job's page", lambda: text_of(browser, '[data-field="type"]') == f"x{markup}")
    assert markup in (text_of(browser, "#job-payload") or "")
    assert browser.find_elements(By.ID, "injected") == []
    assert browser.execute_script("return window.__pwned === undefined") is True
    assert severe_errors(browser) == []
