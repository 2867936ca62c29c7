"""`harness app`: start the voting app (`streamlit run dashboards/app.py`, headless) and print its admin URL.

`harness app` becomes the Streamlit process (exec), so killing it, even with SIGKILL, leaves no server behind.
The store is opened (and migrated) once before Streamlit starts, so a bad ``--db`` fails here with one line. The
store URL and the admin secret travel to the app in its environment (``HARNESS_DB_URL``, ``HARNESS_ADMIN_SECRET``),
not on its command line where other users could read a password; without ``--admin-secret`` (or
``$HARNESS_ADMIN_SECRET``) a random secret is generated and printed. ``--min-response-ms`` travels the same way
(``HARNESS_MIN_RESPONSE_MS``): the voting page does not store an answer given sooner than that after its item
appeared (default 300 ms).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from harness.commands import add_command
from harness.errors import HarnessError


def register(sub: Any) -> None:
    p = add_command(
        sub,
        "app",
        description="Start the Streamlit voting app on HOST:PORT against the store and print the admin URL. "
        "Annotators open invite links from the admin page or `harness study invite`.",
        epilog="Example: harness app --host 0.0.0.0 --port 8501 --db postgresql+psycopg://u:pw@db:5432/harness",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for a LAN)")
    p.add_argument("--port", type=int, default=8501, help="port to listen on (default 8501)")
    p.add_argument("--db", default=None, help="store URL (default: $HARNESS_DB_URL or the SQLite file under .harness/)")
    p.add_argument("--public-url", default=None,
                   help="base URL annotators reach the app at, for invite links (default: http://HOST:PORT as served)")
    p.add_argument("--admin-secret", default=None,
                   help="secret of the admin page (default: $HARNESS_ADMIN_SECRET, else a random one is printed)")
    p.add_argument("--min-response-ms", type=int, default=None,
                   help="answers sooner than this many ms after an item appeared are not stored, with a notice "
                   "(a double key press; default: $HARNESS_MIN_RESPONSE_MS, else 300; 0 stores every answer)")
    p.set_defaults(func=run)


def app_script() -> Path:
    """Path of ``dashboards/app.py`` (found without importing the dashboards package)."""
    spec = importlib.util.find_spec("dashboards")
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError("the dashboards package is not installed; reinstall unclip-harness (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations))) / "app.py"


def streamlit_command(script: Path, host: str, port: int) -> list[str]:
    """The ``python -m streamlit run`` command line of the app (headless, no usage stats, viewer toolbar)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.headless", "true",
        "--server.address", host,
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
    ]


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise HarnessError(f"--port {args.port} is not a TCP port; use 1-65535, e.g. 8501")
    if not args.host.strip():
        raise HarnessError("--host is empty; use 127.0.0.1 (this machine only) or 0.0.0.0 (all interfaces)")
    if args.min_response_ms is not None and args.min_response_ms < 0:
        raise HarnessError(f"--min-response-ms {args.min_response_ms} is negative; use 0 (store every answer) or more")
    from harness.storage.repository import Repository

    with Repository.open(args.db) as repo:  # fail fast on a bad URL; migrates a new store
        db_url = repo.engine.url.render_as_string(hide_password=False)
        shown_url = repo.url
    secret = args.admin_secret or os.environ.get("HARNESS_ADMIN_SECRET") or secrets.token_urlsafe(18)
    shown_host = "localhost" if args.host in ("127.0.0.1", "0.0.0.0", "::") else args.host
    base = (args.public_url or f"http://{shown_host}:{args.port}").strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise HarnessError(f"--public-url {args.public_url!r} is not an http(s) URL; use e.g. http://evalbox:{args.port}")
    print(f"store: {shown_url}")
    print(f"admin page: {base}/?admin={secret}")
    print(f"results page: {base}/?page=results&admin={secret}")
    print("invite links: from the admin page, or `harness study invite STUDY_ID --base-url " + base + "`")
    sys.stdout.flush()
    env = {**os.environ, "HARNESS_ADMIN_SECRET": secret, "HARNESS_DB_URL": db_url, "HARNESS_PUBLIC_URL": base}
    if args.min_response_ms is not None:
        env["HARNESS_MIN_RESPONSE_MS"] = str(args.min_response_ms)
    return exec_streamlit(streamlit_command(app_script(), args.host, args.port), env)


def exec_streamlit(command: list[str], env: dict[str, str]) -> int:
    """Become the Streamlit server (``os.execve``): no child process is left to outlive `harness app`, so killing
    it (Ctrl-C, SIGTERM, even SIGKILL) stops the app. Returns only when exec fails (`HarnessError`)."""
    if importlib.util.find_spec("streamlit") is None:
        raise HarnessError("cannot start the app: streamlit is not installed; install it with `pip install streamlit`")
    try:
        os.execve(command[0], command, env)
    except OSError as exc:
        raise HarnessError(f"cannot start streamlit ({exc}); reinstall unclip-harness (pip install -e .)") from None
    return 0  # pragma: no cover - execve does not return
