"""What ``phiguard serve`` runs beside the console, each part in its own daemon thread:

- the live detection watcher (always): alerts within seconds of an ingested event;
- the IHE ATNA-style syslog listener, when ``PHIGUARD_SYSLOG_PORT`` is set;
- the data-access gateway, when ``PHIGUARD_GATEWAY_UPSTREAM`` is set;
- scheduled encrypted backups, when ``PHIGUARD_BACKUP_DIR`` is set.

A part that is configured but cannot start stops ``serve`` with its reason; a part that is
not installed is skipped. Each entry returned has a ``stop()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from phiguard.app import App
from phiguard.errors import UsageError

log = logging.getLogger("phiguard.web")


@dataclass
class Running:
    name: str
    detail: str
    stop: Callable[[], None]


def _watcher(app: App) -> Running | None:
    try:
        from phiguard.detection.watch import start_background
    except ImportError:
        return None
    thread, stop = start_background(app)

    def halt() -> None:
        stop.set()
        thread.join(timeout=10)

    return Running("detection watcher", "live alerts on ingested events", halt)


def _syslog(app: App) -> Running | None:
    if getattr(app.settings, "syslog_port", None) is None:
        return None
    from phiguard.audit.syslog import SyslogListener

    listener = SyslogListener.from_settings(app)
    if listener is None:
        return None
    port = listener.start()
    stop = getattr(listener, "stop", None) or getattr(listener, "close", None) or (lambda: None)
    return Running("syslog listener", f"{app.settings.syslog_host}:{port}", stop)


def _gateway(app: App) -> Running | None:
    try:
        from phiguard.gateway.server import Gateway, GatewayThread
        from phiguard.gateway.settings import GatewaySettings
    except ImportError:
        return None
    settings = GatewaySettings()
    if not settings.upstream:
        return None
    thread = GatewayThread(Gateway(app, settings))
    host, port = thread.start()
    stop = getattr(thread, "stop", None) or (lambda: None)
    return Running("data-access gateway", f"{host}:{port}", stop)


def _backups(app: App) -> Running | None:
    folder = getattr(app.settings, "backup_dir", None)
    if folder is None:
        return None
    from phiguard.backup.service import BackupScheduler

    sched = BackupScheduler(
        app, folder, app.settings.backup_interval_hours * 3600, app.settings.backup_keep
    )
    sched.start()
    return Running("backup scheduler", str(folder), sched.stop)


STARTERS = (_watcher, _syslog, _gateway, _backups)


def start_all(app: App) -> list[Running]:
    started: list[Running] = []
    try:
        for starter in STARTERS:
            try:
                running = starter(app)
            except ImportError:
                continue
            except Exception as exc:
                raise UsageError(f"{starter.__name__.strip('_')} could not start: {exc}") from exc
            if running is not None:
                started.append(running)
    except BaseException:
        stop_all(started)
        raise
    return started


def stop_all(started: list[Running]) -> None:
    for running in reversed(started):
        try:
            running.stop()
        except Exception:  # stopping is best effort at shutdown
            log.exception("stopping %s", running.name)
