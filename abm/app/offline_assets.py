"""Fill Solara's CDN cache from the npm registry so the browser app works offline.

At run time the Solara server proxies the front-end files a page asks for
(``/_solara/cdn/<npm spec>/<file>``) from a public CDN (jsDelivr) and keeps a
copy in its cache folder, ``<prefix>/share/solara/cdn/``. On a machine without
internet access that fetch fails and the page loads with no app. This module
fills the cache ahead of time with ``npm pack``, which only needs the npm
registry: for each spec it unpacks the package tarball into a folder named
exactly like the spec, e.g. ``share/solara/cdn/requirejs@2.3.6/require.js``
or ``share/solara/cdn/@widgetti/solara-vuetify-app@10.1.1/dist/main8.css``.

The versions are the ones solara 1.64.1 requests (its page template and the
Vue widgets Mesa's SolaraViz uses); :func:`requested_specs` reads them from the
installed solara so a solara upgrade that moves them is noticed.

Run ``python -m abm.app.offline_assets`` to fill the cache of the running
Python environment. Only the standard library is imported here.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "NPM_PINS",
    "NPM_SPECS",
    "OfflineAssetsError",
    "cdn_cache_dir",
    "ensure_offline_assets",
    "missing_specs",
    "requested_specs",
]

#: npm specs Solara's page and SolaraViz's widgets load through the CDN proxy.
#: The vuetify-2 app bundle, its icon font CSS and requirejs come from solara's
#: page template; vue-grid-layout from ``solara.GridDraggable`` (SolaraViz's
#: component grid); vega/vega-lite/vega-embed (semver ranges, resolved by npm
#: like the CDN would) from ``solara.FigureAltair`` (Mesa's Altair components).
NPM_SPECS: tuple[str, ...] = (
    "@widgetti/solara-vuetify-app@10.1.1",
    "font-awesome@4.5.0",
    "requirejs@2.3.6",
    "@widgetti/vue-grid-layout@2.3.13-alpha.2",
    "vega@5",
    "vega-lite@5",
    "vega-embed@6",
)

#: Exact versions ``npm pack`` fetches for the semver-range folders above, so that a
#: fill is reproducible (the folder keeps the range name the page requests; the CDN
#: would serve the newest match, which these were when solara 1.64.1 was pinned).
NPM_PINS: dict[str, str] = {
    "vega@5": "vega@5.33.1",
    "vega-lite@5": "vega-lite@5.23.0",
    "vega-embed@6": "vega-embed@6.29.0",
}

#: File whose presence marks a folder as a complete unpacked package. Solara's
#: own proxy (when it is online) only ever stores the files a page asked for,
#: never ``package.json``, so a folder without it is a partial cache.
_COMPLETE_MARKER = "package.json"

_NPM_TIMEOUT_S = 600

# "{{cdn}}/<spec>/..." in the page template, "${this.getCdn()}/<spec>/..." in Vue files.
_CDN_REF = re.compile(
    r"(?:\{\{\s*cdn\s*\}\}|\$\{this\.getCdn\(\)\})/"
    r"((?:@[\w.-]+/)?[\w.-]+@[\w.+~^-]+)/"
)
_FONTAWESOME_DEFAULT = re.compile(r'fontawesome_path:\s*str\s*=\s*"/((?:@[\w.-]+/)?[\w.-]+@[\w.+~^-]+)/')


class OfflineAssetsError(RuntimeError):
    """The CDN cache could not be filled (npm missing, npm failed, bad tarball)."""


def _solara_package_dir() -> Path | None:
    """Return the installed solara package folder without importing solara."""
    try:
        spec = importlib.util.find_spec("solara")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def cdn_cache_dir(prefix: Path | None = None) -> Path:
    """Return the folder Solara's server uses as its CDN cache.

    Mirrors ``solara.server.settings.Assets.proxy_cache_dir``: the environment
    variable ``SOLARA_ASSETS_PROXY_CACHE_DIR`` wins; otherwise it is
    ``<prefix>/share/solara/cdn`` where the prefix is the user base when solara
    is installed in the user site, else ``sys.prefix``.

    Args:
        prefix: Installation prefix (e.g. a virtualenv folder). When given it is
            used as is and the environment variable is ignored.

    Returns:
        The cache folder (it may not exist yet).
    """
    if prefix is not None:
        return Path(prefix) / "share" / "solara" / "cdn"
    override = os.environ.get("SOLARA_ASSETS_PROXY_CACHE_DIR")
    if override:
        return Path(override)
    base = sys.prefix
    solara_dir = _solara_package_dir()
    user_base = site.getuserbase()
    if solara_dir is not None and user_base and str(solara_dir).startswith(user_base):
        base = user_base
    return Path(base) / "share" / "solara" / "cdn"


def requested_specs(solara_dir: Path | None = None) -> list[str]:
    """Read the npm specs the installed solara requests through its CDN proxy.

    Scans solara's page template, the ``fontawesome_path`` default and the Vue
    widgets SolaraViz uses (grid layout, Vega-Lite). The Vuetify-3 bundle is
    left out: it is only used with ipyvuetify 3, which the project does not use.

    Args:
        solara_dir: The ``solara`` package folder; found without importing
            solara when not given.

    Returns:
        Sorted unique specs, or an empty list when solara is not installed.
    """
    solara_dir = solara_dir or _solara_package_dir()
    if solara_dir is None:
        return []
    found: set[str] = set()
    for rel in (
        "server/templates/solara.html.j2",
        "widgets/vue/gridlayout.vue",
        "widgets/vue/vegalite.vue",
    ):
        path = solara_dir / rel
        if path.is_file():
            found.update(_CDN_REF.findall(path.read_text(encoding="utf-8")))
    settings = solara_dir / "server" / "settings.py"
    if settings.is_file():
        found.update(_FONTAWESOME_DEFAULT.findall(settings.read_text(encoding="utf-8")))
    return sorted(spec for spec in found if "solara-vuetify3-app" not in spec)


def _is_complete(folder: Path) -> bool:
    return (folder / _COMPLETE_MARKER).is_file()


def missing_specs(cache_dir: Path, specs: Iterable[str] = NPM_SPECS) -> list[str]:
    """Return the specs in ``specs`` not yet fully unpacked under ``cache_dir``."""
    return [spec for spec in specs if not _is_complete(cache_dir / spec)]


def _package_name(spec: str) -> str:
    """Return the package name of an npm spec (``@scope/name@1.2`` -> ``@scope/name``)."""
    at = spec.rfind("@")
    return spec[:at] if at > 0 else spec


def _npm_executable() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise OfflineAssetsError(
            "npm not found on PATH: install Node.js with npm (Debian: apt-get install npm) "
            "to fill Solara's offline CDN cache"
        )
    return npm


def _npm_pack(npm: str, specs: Sequence[str], dest: Path) -> dict[str, Path]:
    """Run one ``npm pack`` for all ``specs``; map each spec to its tarball."""
    cmd = [npm, "pack", "--json", "--ignore-scripts", "--pack-destination", str(dest), *specs]
    try:
        proc = subprocess.run(
            cmd,
            cwd=dest,
            capture_output=True,
            text=True,
            timeout=_NPM_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise OfflineAssetsError(f"npm pack timed out after {_NPM_TIMEOUT_S} s") from exc
    if proc.returncode != 0:
        tail = " | ".join(line for line in proc.stderr.strip().splitlines()[-5:] if line)
        raise OfflineAssetsError(f"npm pack {' '.join(specs)} failed (exit {proc.returncode}): {tail}")
    try:
        packed = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise OfflineAssetsError(f"npm pack printed no JSON: {proc.stdout[:200]!r}") from exc
    by_name = {entry.get("name"): dest / entry["filename"] for entry in packed}
    result: dict[str, Path] = {}
    for spec in specs:
        tarball = by_name.get(_package_name(spec))
        if tarball is None or not tarball.is_file():
            raise OfflineAssetsError(f"npm pack produced no tarball for {spec}")
        result[spec] = tarball
    return result


def _unpack(tarball: Path, target: Path) -> None:
    """Unpack an npm tarball into ``target``, dropping its top folder (``package/``)."""
    data_filter = getattr(tarfile, "data_filter", None)
    with tarfile.open(tarball, "r:gz") as tar:
        members = []
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) < 2 or not (member.isfile() or member.isdir()):
                continue
            member.name = str(Path(*parts[1:]))
            members.append(member)
        if data_filter is not None:
            tar.extractall(target, members=members, filter=data_filter)
        else:  # pragma: no cover - Python without PEP 706 filters
            for member in members:
                if Path(member.name).is_absolute() or ".." in Path(member.name).parts:
                    raise OfflineAssetsError(f"unsafe path {member.name!r} in {tarball.name}")
            tar.extractall(target, members=members)


def _install(tarball: Path, final: Path, work: Path) -> None:
    """Unpack ``tarball`` next to ``final`` and move it into place atomically."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=final.parent))
    try:
        _unpack(tarball, staging)
        if not _is_complete(staging):
            raise OfflineAssetsError(f"{tarball.name} has no {_COMPLETE_MARKER}")
        staging.chmod(0o755)  # mkdtemp makes it 0700; the server may run as another user
        if final.exists():
            if _is_complete(final):  # another process finished first
                return
            # A partial cache left by solara's online proxy: move it aside, then replace it.
            stale = Path(tempfile.mkdtemp(prefix=".stale-", dir=work))
            final.rename(stale / "old")
        staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def ensure_offline_assets(prefix: Path | None = None, *, quiet: bool = False) -> Path:
    """Make sure Solara's CDN cache holds every package in :data:`NPM_SPECS`.

    Idempotent: specs already unpacked are skipped and npm is not needed when
    nothing is missing. Each package is unpacked into a temporary folder beside
    its final place and renamed into place, so an interrupted run never leaves
    a half-filled folder that looks complete.

    Args:
        prefix: Installation prefix whose ``share/solara/cdn`` to fill; by default
            the one Solara itself uses for the running interpreter (see
            :func:`cdn_cache_dir`).
        quiet: Print nothing on success.

    Returns:
        The cache folder.

    Raises:
        OfflineAssetsError: npm is missing, ``npm pack`` failed (e.g. no access
            to the npm registry) or a tarball was malformed.
    """
    cache = cdn_cache_dir(prefix)
    unknown = sorted(set(requested_specs()) - set(NPM_SPECS))
    if unknown and not quiet:
        print(
            f"warning: the installed solara requests {', '.join(unknown)}, which is not in NPM_SPECS",
            file=sys.stderr,
        )
    todo = missing_specs(cache)
    if not todo:
        if not quiet:
            print(f"Solara CDN cache complete: {cache}")
        return cache
    npm = _npm_executable()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".npm-pack-", dir=cache) as tmp:
        work = Path(tmp)
        tarballs = _npm_pack(npm, [NPM_PINS.get(spec, spec) for spec in todo], work)
        for spec in todo:
            _install(tarballs[NPM_PINS.get(spec, spec)], cache / spec, work)
            if not quiet:
                print(f"unpacked {spec} -> {cache / spec}")
    return cache


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: fill (or with ``--check``, inspect) the CDN cache."""
    parser = argparse.ArgumentParser(
        prog="python -m abm.app.offline_assets",
        description="Fill Solara's CDN cache from the npm registry for offline use.",
    )
    parser.add_argument("--prefix", type=Path, default=None, help="installation prefix (default: this Python's)")
    parser.add_argument("--check", action="store_true", help="only report missing packages; exit 1 if any")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)
    if args.check:
        cache = cdn_cache_dir(args.prefix)
        todo = missing_specs(cache)
        print(f"{cache}: " + (f"missing {', '.join(todo)}" if todo else "complete"))
        return 1 if todo else 0
    try:
        ensure_offline_assets(args.prefix, quiet=args.quiet)
    except OfflineAssetsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
