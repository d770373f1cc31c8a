"""Helpers for browser tests of the Solara teaching page (not a test module).

Typical use in a test module (pytest puts ``tests/`` on ``sys.path``)::

    import pytest
    from browser_helpers import chromium_page, free_port, serve_solara, skip_reason

    REASON = skip_reason()
    pytestmark = [pytest.mark.browser, pytest.mark.skipif(REASON is not None, reason=REASON or "")]

    def test_page_loads():
        with serve_solara("abm.app.page", free_port()) as url, chromium_page() as session:
            session.page.goto(url)
            session.page.get_by_role("button", name="Step").click()
            assert session.errors() == []

The server runs as a direct child process (stopped by its PID), with Solara's
telemetry off and its CDN cache filled from npm beforehand
(:mod:`abm.app.offline_assets`), so nothing is fetched from the internet. The
browser is the system Chromium (Debian package ``chromium``); Playwright's own
browser download is not used. Locally, browser tests skip when Chromium or
Playwright is missing; on CI (``CI`` set) they do not skip, so CI must install
Chromium (``apt-get install -y chromium``) and Playwright.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import Page

#: Arguments that let Debian's Chromium run headless in containers and CI.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: Environment every Solara server under test gets (on top of ``os.environ``).
SOLARA_TEST_ENV: dict[str, str] = {
    "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False",
    "PYTHONUNBUFFERED": "1",
}

_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def chromium_executable() -> str | None:
    """Return the Chromium to drive: ``$ABM_CHROMIUM``, else ``chromium`` on PATH, else None."""
    override = os.environ.get("ABM_CHROMIUM")
    if override:
        return override if Path(override).is_file() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def skip_reason() -> str | None:
    """Return why browser tests cannot run here, or None when they can.

    On CI (environment variable ``CI`` set to anything but ``""``/``0``/``false``)
    this always returns None: a missing browser there must fail the tests, not
    skip them silently.
    """
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false"):
        return None
    missing = [name for name in ("playwright", "solara", "mesa") if importlib.util.find_spec(name) is None]
    if missing:
        return f"browser test needs {', '.join(missing)} (pip install -e '.[app,test]')"
    if chromium_executable() is None:
        return "browser test needs Chromium (Debian: apt-get install -y chromium, or set ABM_CHROMIUM)"
    if shutil.which("npm") is None and not _cdn_cache_complete():
        return "browser test needs npm (or a filled Solara CDN cache: python -m abm.app.offline_assets)"
    return None


def _cdn_cache_complete() -> bool:
    try:
        from abm.app.offline_assets import cdn_cache_dir, missing_specs
    except ImportError:
        return False
    return not missing_specs(cdn_cache_dir())


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no server output)"
    return "\n".join(text.splitlines()[-lines:]) or "(no server output)"


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """Stop the server we started: SIGTERM to its process group (its PID), then SIGKILL."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)  # the group id is the child's PID (start_new_session)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)


@contextlib.contextmanager
def serve_solara(
    app_path_or_module: str | os.PathLike[str],
    port: int,
    env: Mapping[str, str] | None = None,
    *,
    python: str = sys.executable,
    timeout_s: float = 90.0,
    cwd: str | os.PathLike[str] | None = None,
    fill_cdn_cache: bool = True,
) -> Iterator[str]:
    """Run ``solara run <app> --production`` on 127.0.0.1 and yield its base URL.

    Args:
        app_path_or_module: A Python file or an importable module name defining ``page``.
        port: Port to listen on (see :func:`free_port`).
        env: Extra environment variables for the server (added to ``os.environ``
            and :data:`SOLARA_TEST_ENV`).
        python: Interpreter whose solara to run; the test's own by default.
        timeout_s: How long to wait for the server to answer HTTP before failing.
        cwd: Working directory of the server.
        fill_cdn_cache: Fill Solara's CDN cache from npm first (a no-op when full).

    Yields:
        The base URL, e.g. ``http://127.0.0.1:8765/``.

    Raises:
        RuntimeError: The server exited or did not answer in time; the message
            holds the tail of its output.
    """
    if fill_cdn_cache:
        _fill_cdn_cache(python)
    cmd = [
        python,
        "-m",
        "solara",
        "run",
        str(app_path_or_module),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--production",
        "--no-open",
        "--no-check-version",  # else it asks PyPI for the latest version, synchronously
    ]
    full_env = {**os.environ, **SOLARA_TEST_ENV, **(env or {})}
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory(prefix="solara-server-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
            )
        try:
            _wait_until_serving(proc, url, timeout_s, log_path)
            yield url
        finally:
            _stop(proc)


def _fill_cdn_cache(python: str) -> None:
    if Path(python).resolve() == Path(sys.executable).resolve():
        from abm.app.offline_assets import ensure_offline_assets

        ensure_offline_assets(quiet=True)
        return
    proc = subprocess.run(
        [python, "-m", "abm.app.offline_assets", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"filling Solara's CDN cache failed: {proc.stderr.strip()}")


def _wait_until_serving(proc: subprocess.Popen[bytes], url: str, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"solara server exited with code {proc.returncode} before serving {url}:\n{_tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
                last_error = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as exc:
            last_error = str(exc)
        time.sleep(0.25)
    _stop(proc)
    raise RuntimeError(
        f"solara server did not answer {url} within {timeout_s:.0f} s ({last_error}):\n{_tail(log_path)}"
    )


@dataclasses.dataclass
class BrowserSession:
    """A Playwright page plus what went wrong while it was open.

    Attributes:
        page: The Playwright page.
        console_errors: Text of ``console.error`` messages.
        page_errors: Uncaught JavaScript exceptions.
        failed_requests: ``"<status or failure> <url>"`` for requests that failed
            or answered with HTTP status >= 400.
        blocked_requests: Requests to hosts other than localhost, aborted when
            ``block_external`` is on (a sign the page still needs the internet).
    """

    page: Page
    console_errors: list[str] = dataclasses.field(default_factory=list)
    page_errors: list[str] = dataclasses.field(default_factory=list)
    failed_requests: list[str] = dataclasses.field(default_factory=list)
    blocked_requests: list[str] = dataclasses.field(default_factory=list)

    def errors(self) -> list[str]:
        """Return every problem seen so far, each prefixed with its kind."""
        return (
            [f"console: {m}" for m in self.console_errors]
            + [f"pageerror: {m}" for m in self.page_errors]
            + [f"request: {m}" for m in self.failed_requests]
            + [f"blocked: {m}" for m in self.blocked_requests]
        )


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname in _LOCAL_HOSTS


@contextlib.contextmanager
def chromium_page(
    *,
    viewport: tuple[int, int] = (1400, 900),
    block_external: bool = True,
    default_timeout_ms: float = 30_000,
) -> Iterator[BrowserSession]:
    """Open headless system Chromium through Playwright and yield a :class:`BrowserSession`.

    Console errors, uncaught exceptions and failed requests are recorded on the
    session; check ``session.errors()`` at the end of a test.

    Args:
        viewport: Window size in CSS pixels.
        block_external: Abort requests to any host but localhost, and record them.
        default_timeout_ms: Playwright's default timeout for actions and waits.

    Raises:
        RuntimeError: Chromium was not found.
    """
    from playwright.sync_api import sync_playwright

    executable = chromium_executable()
    if executable is None:
        raise RuntimeError("Chromium not found: apt-get install -y chromium (or set ABM_CHROMIUM)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_ARGS))
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            page = context.new_page()
            page.set_default_timeout(default_timeout_ms)
            session = BrowserSession(page=page)

            def on_console(msg: Any) -> None:
                if msg.type == "error":
                    session.console_errors.append(msg.text)

            def on_response(response: Any) -> None:
                if response.status >= 400:
                    session.failed_requests.append(f"{response.status} {response.url}")

            def on_request_failed(request: Any) -> None:
                if request.url in session.blocked_requests:
                    return
                session.failed_requests.append(f"{request.failure} {request.url}")

            def on_route(route: Any) -> None:
                url = route.request.url
                if _is_local(url):
                    route.continue_()
                else:
                    session.blocked_requests.append(url)
                    route.abort()

            page.on("console", on_console)
            page.on("pageerror", lambda exc: session.page_errors.append(str(exc)))
            page.on("response", on_response)
            page.on("requestfailed", on_request_failed)
            if block_external:
                context.route("**/*", on_route)
            yield session
        finally:
            browser.close()
