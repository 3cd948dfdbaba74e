"""The Alembic migrations build the reference-data schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from phiguard.app import App
from phiguard.storage.base import Base


def _table(change: object) -> str | None:
    item = change[-1] if isinstance(change, tuple) else change[0][-1]  # type: ignore[index]
    table = getattr(item, "table", None)
    return getattr(table, "name", None) or getattr(item, "name", None)


def test_migrations_and_models_agree_on_the_reference_tables(app: App) -> None:
    import phiguard.storage.models  # noqa: F401 - registers the tables compared below

    tables = {"patients", "accounts", "vendors", "contracts", "grants", "encounters"}
    with app.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if _table(d) in tables] == []


def test_patients_have_the_household_index_not_the_old_single_ones(app: App) -> None:
    from sqlalchemy import inspect

    names = {i["name"] for i in inspect(app.engine).get_indexes("patients")}
    assert "ix_patients_surname_address" in names
    assert not names & {
        "ix_patients_surname_bidx",
        "ix_patients_address_bidx",
        "ix_patients_cluster",
    }
