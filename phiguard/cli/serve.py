"""``phiguard serve``: the web console and REST API (uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from phiguard.cli.common import HomeOpt, err, open_app
from phiguard.errors import UsageError

if TYPE_CHECKING:
    from phiguard.web.background import Running


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        ctx: typer.Context,
        host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
        tls_cert: Annotated[
            Path | None,
            typer.Option(
                "--tls-cert", help="PEM certificate (or PHIGUARD_WEB_TLS_CERT): serve HTTPS."
            ),
        ] = None,
        tls_key: Annotated[
            Path | None,
            typer.Option("--tls-key", help="PEM private key (or PHIGUARD_WEB_TLS_KEY)."),
        ] = None,
        workers: Annotated[
            int, typer.Option("--workers", min=1, max=32, help="Worker processes (default 1).")
        ] = 1,
        home: HomeOpt = None,
    ) -> None:
        """Start the web console and REST API (refuses to start before an admin exists)."""
        from phiguard.web.server import run

        phg = open_app(ctx, home)
        from phiguard.web.config import WebSettings

        web = WebSettings()
        if tls_cert or tls_key:
            web = web.model_copy(
                update={"tls_cert": tls_cert or web.tls_cert, "tls_key": tls_key or web.tls_key}
            )
        if bool(web.tls_cert) != bool(web.tls_key):
            raise UsageError("TLS needs both --tls-cert and --tls-key")
        for path in (web.tls_cert, web.tls_key):
            if path is not None and not Path(path).is_file():
                raise UsageError(f"cannot read {path}")
        scheme = "https" if web.tls else "http"

        def started(parts: list[Running]) -> None:
            for part in parts:
                err.print(f"  {part.name}: {part.detail}", markup=False)
            err.print(f"phiguard console on {scheme}://{host}:{port}/  (Ctrl-C to stop)")

        run(phg, web, host=host, port=port, workers=workers, on_start=started)
