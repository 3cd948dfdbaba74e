"""What the gateway knows about the upstream database: the data map (which tables hold
patient data and how grant fields map onto their columns) joined with the live catalog
(columns, types, and the names of built-in functions, operators, types and system relations).

The catalog is read once per gateway start with the service role, and again with
:meth:`Catalog.reload`; DDL through the gateway is refused, so it only changes when a DBA
changes the schema directly.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phiguard.errors import InputError, UsageError

DEFAULT_DATAMAP = Path(__file__).with_name("datamap.toml")

#: Built-in relations that hold data values or other sessions' statements: never readable.
DENIED_RELATIONS = frozenset(
    {
        "pg_stats",
        "pg_stats_ext",
        "pg_stats_ext_exprs",
        "pg_statistic",
        "pg_statistic_ext",
        "pg_statistic_ext_data",
        "pg_largeobject",
        "pg_largeobject_metadata",
        "pg_stat_activity",
        "pg_authid",
        "pg_shadow",
        "pg_user_mapping",
        "pg_user_mappings",
        "pg_hba_file_rules",
        "pg_ident_file_mappings",
        "pg_file_settings",
        "pg_stat_statements",
        "pg_stat_statements_info",
        "pg_prepared_statements",
        "pg_cursors",
    }
)


@dataclass
class TableMap:
    schema: str
    name: str
    key: str | None
    open: frozenset[str]
    renames: dict[str, str]  # column -> field
    columns: list[tuple[str, str]] = field(default_factory=list)  # (name, SQL type), in order
    oid: int = 0
    attnums: dict[int, str] = field(default_factory=dict)

    def field_of(self, column: str) -> str | None:
        """The grant field a column carries, or None for an open column."""
        if column in self.open:
            return None
        return self.renames.get(column, column)

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


@dataclass
class DataMap:
    schema: str
    patient_table: str
    patient_key: str
    cluster_column: str
    restricted_column: str | None
    tables: dict[str, TableMap]  # by name (schema is ``schema``)
    open_tables: frozenset[str]

    @classmethod
    def load(cls, path: Path | None = None) -> DataMap:
        path = path or DEFAULT_DATAMAP
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"{path}: cannot read the gateway data map ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: not valid TOML ({exc})") from None
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "data map") -> DataMap:
        try:
            schema = str(raw.get("schema", "public"))
            patient = raw["patient"]
            tables: dict[str, TableMap] = {}
            for name, spec in (raw.get("tables") or {}).items():
                tables[name] = TableMap(
                    schema=schema,
                    name=name,
                    key=spec.get("key"),
                    open=frozenset(spec.get("open", [])),
                    renames=dict(spec.get("fields", {})),
                )
            dm = cls(
                schema=schema,
                patient_table=str(patient["table"]),
                patient_key=str(patient["key"]),
                cluster_column=str(patient["cluster"]),
                restricted_column=patient.get("restricted"),
                tables=tables,
                open_tables=frozenset(raw.get("open_tables", [])),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{where}: missing or malformed entry {exc}") from None
        if dm.patient_table not in dm.tables:
            raise InputError(
                f"{where}: the patient table {dm.patient_table!r} must be listed under [tables]"
            )
        return dm


@dataclass
class Catalog:
    """The data map resolved against the upstream database's catalog."""

    datamap: DataMap
    functions: frozenset[str] = frozenset()  # pg_catalog functions (incl. aggregates)
    aggregates: frozenset[str] = frozenset()
    operators: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    system_relations: frozenset[str] = frozenset()  # pg_catalog + information_schema
    user_relations: frozenset[tuple[str, str]] = frozenset()
    by_oid: dict[int, TableMap] = field(default_factory=dict)

    @property
    def tables(self) -> dict[str, TableMap]:
        return self.datamap.tables

    @classmethod
    def load(cls, dsn: str, datamap: DataMap) -> Catalog:
        import psycopg

        try:
            conn = psycopg.connect(dsn, connect_timeout=10, autocommit=True)
        except psycopg.Error as exc:
            raise UsageError(f"cannot reach the upstream database: {exc}".splitlines()[0]) from None
        with conn:
            return cls.from_connection(conn, datamap)

    @classmethod
    def from_connection(cls, conn: Any, datamap: DataMap) -> Catalog:
        q = conn.execute
        funcs = {
            r[0]
            for r in q(
                "SELECT proname FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace"
            )
        }
        aggs = {
            r[0]
            for r in q(
                "SELECT proname FROM pg_proc WHERE pronamespace = "
                "'pg_catalog'::regnamespace AND prokind IN ('a', 'w')"
            )
        }
        ops = {
            r[0]
            for r in q(
                "SELECT oprname FROM pg_operator WHERE oprnamespace = 'pg_catalog'::regnamespace"
            )
        }
        types = {
            r[0]
            for r in q(
                "SELECT typname FROM pg_type WHERE typnamespace = 'pg_catalog'::regnamespace"
            )
        }
        rels = {
            r[0]
            for r in q(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON "
                "n.oid = c.relnamespace WHERE n.nspname IN ('pg_catalog', "
                "'information_schema') AND c.relkind IN ('r','v','m','f','p')"
            )
        }
        user = {
            (r[0], r[1])
            for r in q(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON "
                "n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', "
                "'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
            )
        }
        dm = datamap
        by_oid: dict[int, TableMap] = {}
        for t in dm.tables.values():
            rows = q(
                "SELECT c.oid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) "
                "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 "
                "AND NOT a.attisdropped ORDER BY a.attnum",
                (t.schema, t.name),
            ).fetchall()
            if not rows:
                raise UsageError(
                    f"the data map names table {t.schema}.{t.name}, which the "
                    "upstream database does not have"
                )
            t.oid = int(rows[0][0])
            t.columns = [(r[2], r[3]) for r in rows]
            t.attnums = {int(r[1]): r[2] for r in rows}
            names = {r[2] for r in rows}
            if t.key and t.key not in names:
                raise UsageError(f"{t.name}.{t.key} (its patient key) does not exist upstream")
            by_oid[t.oid] = t
        p = dm.tables[dm.patient_table]
        for col in (dm.patient_key, dm.cluster_column, dm.restricted_column):
            if col and col not in {c for c, _ in p.columns}:
                raise UsageError(f"{p.name}.{col} named in [patient] does not exist upstream")
        return cls(
            dm,
            frozenset(funcs),
            frozenset(aggs),
            frozenset(ops),
            frozenset(types),
            frozenset(rels),
            frozenset(user),
            by_oid,
        )


def quote_ident(name: str) -> str:
    """An SQL identifier, quoted (always: names come from the catalog, never from the client)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
