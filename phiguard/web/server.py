"""Running the console under uvicorn, for ``phiguard serve`` and the demo."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn

from phiguard.app import App
from phiguard.errors import UsageError
from phiguard.web import background
from phiguard.web.app import create_app
from phiguard.web.auth.users import Users
from phiguard.web.background import Running
from phiguard.web.config import WebSettings


def require_admin(app: App, web: WebSettings) -> None:
    if not Users(app, web).has_admin():
        raise UsageError(
            "this home has no console admin yet; run `phiguard users create-admin` first"
        )


def _config(app: App, web: WebSettings, host: str, port: int) -> uvicorn.Config:
    api = create_app(app, web, port=port)
    return uvicorn.Config(
        api,
        host=host,
        port=port,
        log_level="warning",
        # URLs can carry one-time portal tickets; patient views are in the audit log anyway
        access_log=False,
        ssl_certfile=str(web.tls_cert) if web.tls else None,
        ssl_keyfile=str(web.tls_key) if web.tls else None,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=10,
    )


def run(
    app: App,
    web: WebSettings,
    *,
    host: str,
    port: int,
    workers: int = 1,
    on_start: Callable[[list[Running]], None] | None = None,
) -> None:
    """Serve until interrupted, with the background parts of :mod:`background` running in
    this (the supervising) process."""
    require_admin(app, web)
    started = background.start_all(app)
    try:
        if on_start is not None:
            on_start(started)
        _serve(app, web, host=host, port=port, workers=workers)
    finally:
        background.stop_all(started)


def _serve(app: App, web: WebSettings, *, host: str, port: int, workers: int) -> None:
    if workers <= 1:
        uvicorn.Server(_config(app, web, host, port)).run()
        return
    # several processes: each opens the home itself (uvicorn imports the factory by name);
    # sessions, throttling and the audit log live in the database and the log, not in memory
    import os

    os.environ["PHIGUARD_HOME"] = str(app.home.root)
    if app.settings.database_url:
        os.environ["PHIGUARD_DATABASE_URL"] = app.settings.database_url
    os.environ["PHIGUARD_WEB_PORT_HINT"] = str(port)
    uvicorn.run(
        "phiguard.web.server:factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        ssl_certfile=str(web.tls_cert) if web.tls else None,
        ssl_keyfile=str(web.tls_key) if web.tls else None,
    )


def factory() -> object:
    """The application of one worker process (``phiguard serve --workers N``)."""
    import os

    from phiguard.settings import Settings

    app = App.open(Settings(), migrate=False)
    port = int(os.environ.get("PHIGUARD_WEB_PORT_HINT", "8000"))
    return create_app(app, WebSettings(), port=port)


@dataclass
class Background:
    """A console running in a thread (tests, the browser tests and the benchmark)."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_in_thread(
    app: App, web: WebSettings, *, host: str = "127.0.0.1", port: int = 0
) -> Background:
    import socket
    import time

    if port == 0:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
    server = uvicorn.Server(_config(app, web, host, port))
    thread = threading.Thread(target=server.run, name="phiguard-console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the console did not start")
        time.sleep(0.05)
    scheme = "https" if web.tls else "http"
    return Background(server, thread, f"{scheme}://{host}:{port}")
