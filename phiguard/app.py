"""The application object: one per home, built from settings, no import-time globals.

Everything a command or a request needs hangs off an :class:`App`: the home's paths, the
operational database, the unwrapped keyring with its field cipher and blind index, and the
clock. Tests build a fresh one per test in a temporary folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from phiguard.clock import Clock, SystemClock
from phiguard.crypto.blind import BlindIndex
from phiguard.crypto.fields import FieldCipher
from phiguard.crypto.keyring import KeyProvider, Keyring, new_provider, provider_for
from phiguard.home import Home
from phiguard.identifiers.hospital_no import HospitalNumberFormat
from phiguard.settings import Settings
from phiguard.storage.base import make_engine, upgrade

if TYPE_CHECKING:
    from phiguard.audit.log import AuditLog


@dataclass
class App:
    settings: Settings
    home: Home
    keyring: Keyring
    engine: Engine
    clock: Clock = field(default_factory=SystemClock)

    # -- construction ----------------------------------------------------------------
    @classmethod
    def init(
        cls,
        settings: Settings,
        *,
        provider: KeyProvider | None = None,
        clock: Clock | None = None,
    ) -> App:
        """Create a new home: folders, keys (0600), database schema, an empty audit log."""
        home = Home(settings.home)
        url = settings.resolved_database_url()
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        remembered = None if parsed.drivername.startswith("sqlite") or parsed.password else url
        home.create_layout(database=parsed.drivername, database_url=remembered)
        provider = provider or new_provider(home.keys, settings)
        keyring = Keyring.create(home.keys, provider)
        engine = make_engine(url)
        upgrade(engine)
        app = cls(settings, home, keyring, engine, clock or SystemClock())
        app._after_init()
        return app

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        provider: KeyProvider | None = None,
        clock: Clock | None = None,
        migrate: bool = True,
    ) -> App:
        home = Home(settings.home)
        marker = home.read_marker()
        if not settings.database_url and marker.get("database_url"):
            settings = settings.model_copy(update={"database_url": marker["database_url"]})
        provider = provider or provider_for(home.keys, settings)
        keyring = Keyring.load(home.keys, provider)
        engine = make_engine(settings.resolved_database_url())
        if migrate:
            upgrade(engine)
        return cls(settings, home, keyring, engine, clock or SystemClock())

    def _after_init(self) -> None:
        """Hook for subsystems that create state at ``init`` (the audit log's first checkpoint)."""
        hook = getattr(self.audit, "initialise", None)
        if hook is not None:
            hook()

    def close(self) -> None:
        if "audit" in self.__dict__:
            closer = getattr(self.__dict__["audit"], "close", None)
            if closer is not None:
                closer()
        self.engine.dispose()

    # -- services --------------------------------------------------------------------
    @cached_property
    def cipher(self) -> FieldCipher:
        return FieldCipher(self.keyring)

    @cached_property
    def blind(self) -> BlindIndex:
        return BlindIndex(self.keyring.index_key)

    @cached_property
    def hospital_no_format(self) -> HospitalNumberFormat:
        return HospitalNumberFormat(
            self.settings.hospital_no_pattern, self.settings.hospital_no_check
        )

    @cached_property
    def _sessionmaker(self) -> sessionmaker[Session]:
        return sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any exception."""
        with self._sessionmaker() as s, s.begin():
            yield s

    @cached_property
    def audit(self) -> AuditLog:
        from phiguard.audit.log import AuditLog

        return AuditLog.open(self)

    def record(self, tag: str, *, actor: str, subject: str = "", **detail: Any) -> None:
        """Write one of phiguard's own actions to the tamper-evident log.

        ``tag`` is a ``source:subject:action`` string from :mod:`phiguard.audit.tags`;
        ``detail`` must never carry a plaintext identifier (pass patient ids, not HKIDs).
        """
        self.audit.record_action(tag, actor=actor, subject=subject, detail=detail)
