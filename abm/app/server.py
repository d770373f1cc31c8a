"""`abm app`: serve the teaching page with Solara, offline, in the foreground.

`serve()` fills Solara's CDN cache from npm if needed (`abm.app.offline_assets`), checks that the port is free (a
one-line `UserInputError` if not), then replaces the current process with
``python -m solara run abm.app.page --production ...`` (so Ctrl-C and signals reach the server directly).
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Mapping

from abm.errors import UserInputError

PAGE_MODULE = "abm.app.page"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

#: Environment of the Solara server: no telemetry, no "runs on Solara" banner, our title, unbuffered logs.
SERVER_ENV: dict[str, str] = {
    "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False",
    "SOLARA_THEME_SHOW_BANNER": "False",
    "SOLARA_THEME_TITLE": "abm · reflexivity lab",
    "PYTHONUNBUFFERED": "1",
}


def solara_command(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, python: str = sys.executable) -> list[str]:
    """The command line that runs the page's Solara server."""
    return [
        python,
        "-m",
        "solara",
        "run",
        PAGE_MODULE,
        "--host",
        host,
        "--port",
        str(port),
        "--production",
        "--no-open",
        "--no-check-version",  # else it asks PyPI for the newest version at start-up
    ]


def check_port(host: str, port: int) -> None:
    """Raise `UserInputError` (one line) if `host:port` cannot be bound, e.g. another server uses it."""
    if not 0 < port < 65536:
        raise UserInputError(f"--port {port}: must be between 1 and 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserInputError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is not "taken"
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserInputError(
                    f"port {port} on {host} is already in use (another `abm app`?); choose another with --port"
                ) from None
            raise UserInputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def server_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) plus `SERVER_ENV`."""
    return {**(os.environ if base is None else base), **SERVER_ENV}


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the teaching page at http://host:port until interrupted (this call does not return).

    Raises:
        UserInputError: the port is taken or invalid, the host cannot be resolved, the optional dependencies of
            the page are missing, or Solara's offline assets cannot be fetched.
    """
    import importlib.util

    missing = [name for name in ("solara", "mesa", "matplotlib") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserInputError(f"the teaching page needs {', '.join(missing)}: pip install -e '.[app]'")
    check_port(host, port)
    from abm.app.offline_assets import OfflineAssetsError, ensure_offline_assets

    try:
        ensure_offline_assets(quiet=True)
    except OfflineAssetsError as exc:
        raise UserInputError(f"cannot prepare the page's browser files: {exc}") from None
    print(f"abm: serving the teaching page at http://{host}:{port}/ (Ctrl-C to stop)", file=sys.stderr, flush=True)
    command = solara_command(host, port)
    os.execve(sys.executable, command, server_environment())
