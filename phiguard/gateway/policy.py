"""Per-statement decisions: parse with PostgreSQL's own parser (pglast/libpg_query), judge
every statement of a string, and rewrite what is allowed so that it cannot return more than
the grant covers.

How a statement is made safe (docs/dev/gateway.md has the reasoning):

* **Relation substitution.** Every reference to a patient table — in FROM, JOINs, CTEs,
  subqueries, UNION arms, cursors, ``COPY (SELECT …)`` — is replaced in the text, at the
  parser's location, by a subquery over the real table that (a) keeps only the rows of the
  grant's cluster (and never restricted/VIP rows for contractors), (b) returns the grant's
  fields, guarded by the same condition, (c) returns a constant mask (text) or NULL (other
  types) for every other field. Whatever the query does with the column afterwards — WHERE,
  functions, casts, aggregates, UNION — it only ever sees the masked value, so there is no
  predicate or error-message oracle on a masked column, and no out-of-scope value reaches
  any expression even when the planner flattens the subquery.
* **Allow lists, not deny lists, for what can reach data**: relations must be mapped patient
  tables, mapped open tables, CTE names in scope, or system relations not holding values;
  functions must be built-ins (pg_catalog) that neither read files, large objects or other
  sessions nor run SQL given as a string, unless the grant names them; operators and cast
  types must be built-ins; statement types must be on the list below.
* **Attribution.** When a plain SELECT over a patient table does not project the patient
  key, the gateway appends it as a hidden last column and strips it from the result, so the
  audit log records the patients each row belonged to.

Nothing here uses regular expressions on SQL: locations come from the parser, token ends
from its scanner.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from pglast import parser as pg

from phiguard.gateway.catalog import (
    DENIED_RELATIONS,
    Catalog,
    TableMap,
    quote_ident,
    quote_literal,
)

HIDDEN_KEY = "__phiguard_pid"

#: Built-ins refused unless the grant names them: they read files, large objects or other
#: sessions' activity, run SQL passed as a string (and so escape this parser), or change
#: server state.
DENIED_FUNCTIONS = frozenset(
    {
        "pg_stat_file",
        "pg_current_logfile",
        "set_config",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_promote",
        "pg_switch_wal",
        "pg_create_restore_point",
        "pg_backup_start",
        "pg_backup_stop",
        "pg_start_backup",
        "pg_stop_backup",
        "pg_log_backend_memory_contexts",
        "pg_sleep",
        "pg_sleep_for",
        "pg_sleep_until",
        "pg_stat_get_activity",
        "pg_stat_get_backend_activity",
        "pg_import_system_collations",
        "ts_stat",
        "ts_rewrite",
        "loread",
        "lowrite",
        "pg_get_backend_memory_contexts",
        "pg_stat_reset",
        "pg_notify",
        "dblink",
    }
)
DENIED_PREFIXES = (
    "pg_read_",
    "pg_ls_",
    "lo_",
    "pg_file_",
    "pg_logical_",
    "pg_replication_",
    "pg_create_",
    "pg_drop_replication",
    "dblink_",
    "pg_stat_reset",
)
DENIED_SUFFIXES = ("_to_xml", "_to_xmlschema", "_to_xml_and_xmlschema")

SETTABLE = frozenset(
    {
        "application_name",
        "datestyle",
        "intervalstyle",
        "timezone",
        "extra_float_digits",
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "bytea_output",
        "client_min_messages",
        "transaction_isolation",
        "transaction_read_only",
        "default_transaction_isolation",
        "default_transaction_read_only",
        "work_mem",
        "jit",
        "transaction",
        "session characteristics",
        "enable_seqscan",
        "enable_indexscan",
    }
)
#: Statements that create, change or remove schema objects or server state.
DDL = frozenset(
    {
        "CreateStmt",
        "AlterTableStmt",
        "DropStmt",
        "IndexStmt",
        "ViewStmt",
        "CreateTableAsStmt",
        "CreateFunctionStmt",
        "AlterFunctionStmt",
        "CreateSchemaStmt",
        "CreateSeqStmt",
        "AlterSeqStmt",
        "RenameStmt",
        "TruncateStmt",
        "CommentStmt",
        "GrantStmt",
        "GrantRoleStmt",
        "CreateRoleStmt",
        "AlterRoleStmt",
        "DropRoleStmt",
        "CreateTrigStmt",
        "RuleStmt",
        "CreateExtensionStmt",
        "AlterExtensionStmt",
        "VacuumStmt",
        "ClusterStmt",
        "ReindexStmt",
        "CreateDomainStmt",
        "AlterDomainStmt",
        "CompositeTypeStmt",
        "CreateEnumStmt",
        "AlterEnumStmt",
        "DefineStmt",
        "CreatePolicyStmt",
        "AlterPolicyStmt",
        "CreateCastStmt",
        "RefreshMatViewStmt",
        "AlterOwnerStmt",
        "AlterObjectSchemaStmt",
        "CreateForeignTableStmt",
        "CreateFdwStmt",
        "CreateForeignServerStmt",
        "CreateUserMappingStmt",
        "ImportForeignSchemaStmt",
        "CreatePublicationStmt",
        "CreateSubscriptionStmt",
        "AlterDefaultPrivilegesStmt",
        "CreateStatsStmt",
        "CreateEventTrigStmt",
        "SecLabelStmt",
        "AlterSystemStmt",
        "CreatedbStmt",
        "DropdbStmt",
        "AlterDatabaseStmt",
        "AlterDatabaseSetStmt",
        "CheckPointStmt",
        "LoadStmt",
        "CreateTableSpaceStmt",
        "DropTableSpaceStmt",
        "DropOwnedStmt",
        "ReassignOwnedStmt",
        "CreateOpClassStmt",
        "CreateConversionStmt",
        "AlterTSConfigurationStmt",
        "CreateTransformStmt",
        "CreateAmStmt",
        "AlterCollationStmt",
        "AlterStatsStmt",
    }
)
WRITES = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})
_STOP = frozenset(
    {
        "FROM",
        "INTO",
        "WHERE",
        "GROUP_P",
        "HAVING",
        "WINDOW",
        "ORDER",
        "LIMIT",
        "OFFSET",
        "FETCH",
        "FOR",
        "UNION",
        "INTERSECT",
        "EXCEPT",
        "ASCII_59",
    }
)
_TEXT_TYPES = ("text", "character", "varchar", "char", "name", "citext", "bpchar")


@dataclass(frozen=True)
class Scope:
    """What one grant lets a gateway session see."""

    grant_id: str
    cluster: str  # a cluster code or "ALL"
    fields: frozenset[str] | None  # None: all fields ("*")
    actions: frozenset[str]
    max_rows: int
    contractor: bool = True
    allow: frozenset[str] = frozenset()  # "ddl", "function:NAME"
    over_limit: str = "cut"  # cut | refuse
    mask_text: str = "***"

    def grants_field(self, name: str) -> bool:
        return self.fields is None or name in self.fields


@dataclass
class Judgement:
    """The decision on one statement, and what to send upstream if it is allowed."""

    kind: str  # select, copy, declare, fetch, close, explain, set, show, ...
    allowed: bool
    sql: str  # the statement as sent upstream (rewritten)
    reasons: list[str] = field(default_factory=list)
    action: str = "read"
    relations: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)  # granted fields it reads
    masked: list[str] = field(default_factory=list)  # fields it touches that are masked
    protected: bool = False  # reads a patient table
    hidden_key: bool = False  # a trailing key column was added (strip it)
    cursor: str | None = None
    fingerprint: str = ""
    sqlstate: str = "42501"
    copy_csv: bool = False
    copy_header: bool = False

    @property
    def limited(self) -> bool:
        """Its rows count against the grant's row limit."""
        return self.protected and self.kind in ("select", "copy", "declare")


@dataclass
class Plan:
    statements: list[Judgement]
    text: str  # the whole string as sent upstream

    @property
    def refused(self) -> Judgement | None:
        return next((j for j in self.statements if not j.allowed), None)


class Refused(Exception):
    def __init__(self, reason: str, sqlstate: str = "42501") -> None:
        super().__init__(reason)
        self.sqlstate = sqlstate


class Policy:
    """Judges statements for one scope (cached by statement text)."""

    def __init__(self, catalog: Catalog, scope: Scope, *, cache_size: int = 2048) -> None:
        self.catalog = catalog
        self.scope = scope
        self._cache: OrderedDict[str, Plan] = OrderedDict()
        self._cache_size = cache_size
        self._subs: dict[str, str] = {}

    def plan(self, sql: str) -> Plan:
        hit = self._cache.get(sql)
        if hit is not None:
            self._cache.move_to_end(sql)
            return hit
        result = self._plan(sql)
        self._cache[sql] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def _plan(self, sql: str) -> Plan:
        try:
            tree = json.loads(pg.parse_sql_json(sql))
        except pg.ParseError as exc:
            j = Judgement(
                "invalid", False, "", [f"the gateway cannot parse this: {exc}"], sqlstate="42601"
            )
            return Plan([j], "")
        raw = sql.encode()
        text = _Text(sql, raw)
        out: list[Judgement] = []
        for rs in tree.get("stmts", []):
            start = rs.get("stmt_location", 0)
            length = rs.get("stmt_len", 0) or (len(raw) - start)
            out.append(self._judge(rs["stmt"], text, start, start + length))
        return Plan(out, "\n;\n".join(j.sql for j in out))

    # -- one statement ---------------------------------------------------------------------
    def _judge(self, node: dict[str, Any], text: _Text, b0: int, b1: int) -> Judgement:
        ((kind_name, body),) = node.items()
        original = text.bytes_slice(b0, b1)
        try:
            fp = pg.fingerprint(original)
        except pg.ParseError:
            fp = ""
        w = _Walker(self, text)
        try:
            j = self._classify(kind_name, body, w)
        except Refused as exc:
            j = Judgement(
                _KIND.get(kind_name, kind_name), False, "", [str(exc)], sqlstate=exc.sqlstate
            )
        j.fingerprint = fp
        if j.allowed and w.problems:
            j.allowed, j.reasons = False, list(dict.fromkeys(w.problems))
        if not j.allowed:
            j.sql = ""
            return j
        j.relations = sorted(w.relations)
        j.protected = bool(w.protected)
        if j.protected:
            touched = w.touched_fields()
            j.fields = sorted(f for f in touched if self.scope.grants_field(f))
            j.masked = sorted(f for f in touched if not self.scope.grants_field(f))
        j.sql = text.apply(b0, b1, w.edits)
        return j

    def _classify(self, name: str, body: dict[str, Any], w: _Walker) -> Judgement:
        s = self.scope
        if name == "SelectStmt":
            w.walk_select(body, frozenset())
            w.attribute(body)
            return Judgement("select", True, "", hidden_key=w.hidden)
        if name == "ExplainStmt":
            w.walk(body.get("query"), frozenset())
            if w.writes:
                raise Refused("EXPLAIN of a statement that writes is not allowed")
            return Judgement("explain", True, "", action="search")
        if name == "CopyStmt":
            return self._copy(body, w)
        if name == "DeclareCursorStmt":
            w.walk_select(body["query"].get("SelectStmt", {}), frozenset())
            if "SelectStmt" not in body["query"]:
                raise Refused("a cursor must be declared over a SELECT")
            w.attribute(body["query"]["SelectStmt"])
            return Judgement(
                "declare", True, "", hidden_key=w.hidden, cursor=body.get("portalname", "")
            )
        if name == "FetchStmt":
            return Judgement(
                "move" if body.get("ismove") else "fetch",
                True,
                "",
                cursor=body.get("portalname", ""),
            )
        if name == "ClosePortalStmt":
            return Judgement("close", True, "", cursor=body.get("portalname"))
        if name == "TransactionStmt":
            if body.get("kind") in (
                "TRANS_STMT_PREPARE",
                "TRANS_STMT_COMMIT_PREPARED",
                "TRANS_STMT_ROLLBACK_PREPARED",
            ):
                raise Refused("two-phase commit is not allowed through the gateway")
            return Judgement("transaction", True, "", action="search")
        if name == "VariableSetStmt":
            var = (body.get("name") or "").lower()
            if body.get("kind") != "VAR_RESET_ALL" and var not in SETTABLE:
                raise Refused(f"setting {var or 'this'} is not allowed through the gateway")
            return Judgement("set", True, "", action="search")
        if name == "VariableShowStmt":
            return Judgement("show", True, "", action="search")
        if name in ("DiscardStmt", "DeallocateStmt"):
            return Judgement("discard", True, "", action="search")
        if name in WRITES:
            w.walk(body, frozenset(), top=name)
            if "update" not in s.actions:
                raise Refused(f"grant {s.grant_id} does not allow update")
            return Judgement("write", True, "", action="update")
        if name in DDL:
            if "ddl" not in s.allow:
                raise Refused(
                    f"DDL ({_KIND.get(name, name)}) is refused: grant {s.grant_id} "
                    "does not name ddl"
                )
            w.ddl = True
            w.walk(body, frozenset())
            return Judgement("ddl", True, "", action="update")
        if name in ("DoStmt", "CallStmt"):
            what = "anonymous code blocks (DO)" if name == "DoStmt" else "CALL"
            raise Refused(f"{what} are not allowed through the gateway")
        if name in ("PrepareStmt", "ExecuteStmt"):
            raise Refused(
                "SQL-level PREPARE/EXECUTE is not supported through the gateway; "
                "use the extended query protocol"
            )
        raise Refused(f"{_KIND.get(name, name)} statements are not allowed through the gateway")

    def _copy(self, body: dict[str, Any], w: _Walker) -> Judgement:
        if body.get("is_from"):
            raise Refused("COPY FROM writes data and is refused")
        if body.get("filename") or body.get("is_program"):
            raise Refused("COPY to a server file or program is refused")
        query = body.get("query")
        if not query:
            raise Refused(
                "COPY of a table is refused; use COPY (SELECT …) TO STDOUT, which "
                "the grant's scope and masks apply to"
            )
        csv = header = False
        for opt in body.get("options") or []:
            d = opt.get("DefElem", {})
            arg = d.get("arg") or {}
            value = str(
                (arg.get("String") or {}).get("sval", "")
                or (arg.get("Boolean") or {}).get("boolval", "")
                or (arg.get("Integer") or {}).get("ival", "")
            ).lower()
            if d.get("defname") == "format":
                if value not in ("text", "csv"):
                    raise Refused("COPY … FORMAT binary is refused through the gateway")
                csv = value == "csv"
            elif d.get("defname") == "header":
                header = value in ("", "true", "on", "1", "match")
            elif d.get("defname") in ("delimiter", "quote", "escape"):
                raise Refused(
                    "COPY with a custom delimiter, quote or escape is refused through the gateway"
                )
        if "SelectStmt" not in query:
            raise Refused("only COPY (SELECT …) TO STDOUT is allowed")
        w.walk_select(query["SelectStmt"], frozenset())
        if w.protected and "export" not in self.scope.actions:
            raise Refused(
                f"COPY is an export and grant {self.scope.grant_id} does not allow export"
            )
        w.attribute(query["SelectStmt"], force=True)
        return Judgement(
            "copy",
            True,
            "",
            action="export",
            hidden_key=w.hidden,
            copy_csv=csv,
            copy_header=header and csv,
        )

    # -- the substituted view of a patient table ------------------------------------------
    def substitute(self, t: TableMap) -> str:
        hit = self._subs.get(t.name)
        if hit is not None:
            return hit
        s, dm = self.scope, self.catalog.datamap
        g = quote_ident("__phiguard_t")
        pred = self._predicate(t, g)
        cols = []
        for col, typ in t.columns:
            ref = f"{g}.{quote_ident(col)}"
            fld = t.field_of(col)
            if fld is None:
                cols.append(ref)
            elif s.grants_field(fld):
                cols.append(
                    f"CASE WHEN {pred} THEN {ref} END AS {quote_ident(col)}" if pred else ref
                )
            else:
                mask = quote_literal(s.mask_text) if typ.startswith(_TEXT_TYPES) else "NULL"
                cols.append(f"CAST({mask} AS {typ}) AS {quote_ident(col)}")
        sql = f"SELECT {', '.join(cols)} FROM {t.qualified} AS {g}"
        if pred:
            sql += f" WHERE {pred}"
        del dm
        self._subs[t.name] = sql
        return sql

    def _predicate(self, t: TableMap, alias: str) -> str | None:
        s, dm = self.scope, self.catalog.datamap
        conds = []
        if s.cluster != "ALL":
            conds.append(f"{{a}}.{quote_ident(dm.cluster_column)} = {quote_literal(s.cluster)}")
        if s.contractor and dm.restricted_column:
            conds.append(f"NOT coalesce({{a}}.{quote_ident(dm.restricted_column)}, false)")
        if not conds:
            return None
        if t.name == dm.patient_table:
            return " AND ".join(c.format(a=alias) for c in conds)
        if not t.key:
            raise Refused(
                f"table {t.name} has no patient key, so its rows cannot be kept "
                "inside the grant's scope"
            )
        p = dm.tables[dm.patient_table]
        inner = quote_ident("__phiguard_p")
        where = " AND ".join(c.format(a=inner) for c in conds)
        return (
            f"{alias}.{quote_ident(t.key)} IN (SELECT {inner}.{quote_ident(dm.patient_key)}"
            f" FROM {p.qualified} AS {inner} WHERE {where})"
        )

    def function_allowed(self, parts: list[str]) -> str | None:
        """None if the function may be called, else the reason."""
        name = parts[-1].lower()
        schema = [p.lower() for p in parts[:-1]]
        named = (
            f"function:{name}" in self.scope.allow
            or f"function:{'.'.join(parts).lower()}" in self.scope.allow
        )
        if named:
            return None
        if schema not in ([], ["pg_catalog"]) or name not in self.catalog.functions:
            return (
                f"function {'.'.join(parts)} is not a built-in; grant "
                f"{self.scope.grant_id} does not name it"
            )
        if (
            name in DENIED_FUNCTIONS
            or name.startswith(DENIED_PREFIXES)
            or name.endswith(DENIED_SUFFIXES)
        ):
            return (
                f"function {name} reads files, large objects or other sessions, runs SQL "
                f"text or changes the server; grant {self.scope.grant_id} does not name it"
            )
        return None


_KIND = {
    "SelectStmt": "select",
    "CopyStmt": "copy",
    "InsertStmt": "insert",
    "UpdateStmt": "update",
    "DeleteStmt": "delete",
    "MergeStmt": "merge",
    "CreateStmt": "CREATE TABLE",
    "DropStmt": "DROP",
    "AlterTableStmt": "ALTER TABLE",
    "ViewStmt": "CREATE VIEW",
    "CreateTableAsStmt": "CREATE TABLE AS",
    "CreateFunctionStmt": "CREATE FUNCTION",
    "TruncateStmt": "TRUNCATE",
    "GrantStmt": "GRANT",
    "IndexStmt": "CREATE INDEX",
    "DoStmt": "DO",
    "LockStmt": "LOCK",
    "ListenStmt": "LISTEN",
    "NotifyStmt": "NOTIFY",
    "LoadStmt": "LOAD",
}


class _Text:
    """The statement string with the parser's byte offsets and the scanner's tokens."""

    def __init__(self, sql: str, raw: bytes) -> None:
        self.sql = sql
        self.raw = raw
        self.ascii = len(sql) == len(raw)
        self._tokens: list[Any] | None = None
        self._at: dict[int, int] = {}
        self._b2c: list[int] | None = None

    def char(self, b: int) -> int:
        if self.ascii:
            return b
        if self._b2c is None:
            m: list[int] = []
            for i, ch in enumerate(self.sql):
                m.extend([i] * len(ch.encode()))
            m.append(len(self.sql))
            self._b2c = m
        return self._b2c[b]

    def bytes_slice(self, b0: int, b1: int) -> str:
        return self.raw[b0:b1].decode()

    @property
    def tokens(self) -> list[Any]:
        if self._tokens is None:
            self._tokens = [
                t for t in pg.scan(self.sql) if t.name not in ("SQL_COMMENT", "C_COMMENT")
            ]
            self._at = {t.start: i for i, t in enumerate(self._tokens)}
        return self._tokens

    def token_index(self, char_pos: int) -> int:
        toks = self.tokens
        i = self._at.get(char_pos)
        if i is None:
            raise Refused("the gateway could not locate a name in this statement")
        del toks
        return i

    def name_end(self, char_pos: int) -> int:
        """End (exclusive, chars) of the possibly qualified name starting at ``char_pos``."""
        toks = self.tokens
        i = self.token_index(char_pos)
        end = toks[i].end + 1
        while i + 2 < len(toks) and toks[i + 1].name == "ASCII_46":
            i += 2
            end = toks[i].end + 1
        return end

    def list_end(self, char_pos: int, stop_char: int) -> int:
        """Where a target list that has an item at ``char_pos`` ends: the first depth-0 clause
        keyword, closing parenthesis or end of statement after it."""
        toks = self.tokens
        i = self.token_index(char_pos)
        depth = 0
        while i < len(toks) and toks[i].start < stop_char:
            t = toks[i]
            if t.name in ("ASCII_40", "ASCII_91"):
                depth += 1
            elif t.name in ("ASCII_41", "ASCII_93"):
                depth -= 1
                if depth < 0:
                    return t.start
            elif depth == 0 and t.name in _STOP:
                return t.start
            i += 1
        return stop_char

    def apply(self, b0: int, b1: int, edits: list[tuple[int, int, str]]) -> str:
        c0, c1 = self.char(b0), self.char(b1)
        if not edits:
            return self.sql[c0:c1]
        out, pos = [], c0
        for s, e, rep in sorted(edits):
            if s < pos:
                raise Refused("the gateway could not rewrite this statement safely")
            out.append(self.sql[pos:s])
            out.append(rep)
            pos = e
        out.append(self.sql[pos:c1])
        return "".join(out)


class _Walker:
    """Walks one statement's parse tree (libpg_query JSON): checks every relation, function,
    operator and type; records substitutions as text edits."""

    def __init__(self, policy: Policy, text: _Text) -> None:
        self.p = policy
        self.cat = policy.catalog
        self.text = text
        self.edits: list[tuple[int, int, str]] = []
        self.problems: list[str] = []
        self.relations: set[str] = set()
        self.protected: list[TableMap] = []
        self.columns: set[str] = set()
        self.star = False
        self.writes = False
        self.ddl = False
        self.hidden = False
        self._in_write = 0
        self._aliases: dict[int, str] = {}  # id(RangeVar dict) -> alias used after substitution

    # -- generic walk ------------------------------------------------------------------------
    def walk(self, node: Any, ctes: frozenset[str], top: str | None = None) -> None:
        if isinstance(node, list):
            for x in node:
                self.walk(x, ctes)
            return
        if not isinstance(node, dict):
            return
        if top is not None:
            self._write(node, ctes)
            return
        if len(node) == 1:
            ((k, v),) = node.items()
            if k[:1].isupper() and isinstance(v, dict):
                handler = _HANDLERS.get(k)
                if handler is not None:
                    handler(self, v, ctes)
                elif k in WRITES:
                    self._write(v, ctes)
                elif k in ("DoStmt", "CallStmt"):
                    self.problems.append("anonymous code blocks and CALL are not allowed")
                else:
                    self.fields(v, ctes)
                return
        if "relname" in node and "relpersistence" in node:
            self.rangevar(node, ctes)
            return
        self.fields(node, ctes)

    def fields(self, v: dict[str, Any], ctes: frozenset[str]) -> None:
        for val in v.values():
            if isinstance(val, (dict, list)):
                self.walk(val, ctes)

    def with_scope(self, w: dict[str, Any] | None, ctes: frozenset[str]) -> frozenset[str]:
        if not w:
            return ctes
        items = [c.get("CommonTableExpr", {}) for c in w.get("ctes", [])]
        names = [c.get("ctename", "") for c in items]
        recursive = bool(w.get("recursive"))
        for i, cte in enumerate(items):
            seen = ctes | frozenset(names if recursive else names[:i])
            self.walk(cte.get("ctequery"), seen)
        return ctes | frozenset(names)

    def walk_select(self, v: dict[str, Any], ctes: frozenset[str]) -> None:
        if v.get("intoClause"):
            self.problems.append("SELECT INTO creates a table (DDL) and is refused")
        if v.get("lockingClause"):
            self.problems.append("row locks (FOR UPDATE/SHARE) are not allowed through the gateway")
        inner = self.with_scope(v.get("withClause"), ctes)
        for k, val in v.items():
            if k != "withClause" and isinstance(val, (dict, list)):
                self.walk(val, inner)

    def _write(self, v: dict[str, Any], ctes: frozenset[str]) -> None:
        self.writes = True
        inner = self.with_scope(v.get("withClause"), ctes)
        target = v.get("relation") or {}
        name = target.get("relname", "")
        if (
            target.get("schemaname", self.cat.datamap.schema) != self.cat.datamap.schema
            or name not in self.cat.datamap.open_tables
        ):
            self.problems.append(
                f"writes are allowed only to mapped open tables, not {name or 'this target'}"
            )
        else:
            self.relations.add(name)
        self._in_write += 1
        try:
            for k, val in v.items():
                if k not in ("withClause", "relation") and isinstance(val, (dict, list)):
                    self.walk(val, inner)
        finally:
            self._in_write -= 1

    # -- nodes -------------------------------------------------------------------------------
    def rangevar(self, v: dict[str, Any], ctes: frozenset[str]) -> None:
        dm = self.cat.datamap
        name = v.get("relname", "")
        schema = v.get("schemaname")
        if v.get("catalogname"):
            self.problems.append("cross-database references are refused")
            return
        if schema is None and name in ctes:
            return
        if schema in (None, dm.schema) and name in dm.tables:
            t = dm.tables[name]
            self.relations.add(name)
            if self._in_write or self.ddl:
                self.problems.append(
                    f"{name} holds patient data: statements that write or "
                    "change schema may not read it through the gateway"
                )
                return
            if not v.get("inh", True):
                self.problems.append(f"ONLY {name} is not supported on patient tables")
                return
            self.protected.append(t)
            self._substitute(v, t)
            return
        if schema in (None, dm.schema) and name in dm.open_tables:
            self.relations.add(name)
            return
        if (
            schema in (None, "pg_catalog", "information_schema")
            and name in self.cat.system_relations
        ):
            if name in DENIED_RELATIONS:
                self.problems.append(
                    f"{name} exposes data values or other sessions' statements and is refused"
                )
            return
        if self.ddl:
            return  # with a ddl grant: objects being created or changed
        shown = f"{schema}.{name}" if schema else name
        self.problems.append(
            f"relation {shown} is not mapped for the gateway (only patient "
            "tables, open tables and system catalogs are reachable)"
        )

    def _substitute(self, v: dict[str, Any], t: TableMap) -> None:
        try:
            sub = self.p.substitute(t)
        except Refused as exc:
            self.problems.append(str(exc))
            return
        start = self.text.char(v["location"])
        end = self.text.name_end(start)
        alias = (v.get("alias") or {}).get("aliasname")
        rep = f"({sub})" if alias else f"({sub}) AS {quote_ident(t.name)}"
        self._aliases[id(v)] = alias or t.name
        self.edits.append((start, end, rep))

    def funccall(self, v: dict[str, Any], ctes: frozenset[str]) -> None:
        parts = [x.get("String", {}).get("sval", "") for x in v.get("funcname", [])]
        why = self.p.function_allowed(parts) if parts else "unnamed function"
        if why and not self.ddl:
            self.problems.append(why)
        for k, val in v.items():
            if k != "funcname" and isinstance(val, (dict, list)):
                self.walk(val, ctes)

    def a_expr(self, v: dict[str, Any], ctes: frozenset[str]) -> None:
        if v.get("kind") in ("AEXPR_OP", "AEXPR_OP_ANY", "AEXPR_OP_ALL"):
            parts = [x.get("String", {}).get("sval", "") for x in v.get("name", [])]
            if parts and (
                parts[:-1] not in ([], ["pg_catalog"]) or parts[-1] not in self.cat.operators
            ):
                self.problems.append(f"operator {'.'.join(parts)} is not a built-in")
        for k, val in v.items():
            if k != "name" and isinstance(val, (dict, list)):
                self.walk(val, ctes)

    def typecast(self, v: dict[str, Any], ctes: frozenset[str]) -> None:
        names = [
            x.get("String", {}).get("sval", "") for x in (v.get("typeName") or {}).get("names", [])
        ]
        if names and (names[:-1] not in ([], ["pg_catalog"]) or names[-1] not in self.cat.types):
            self.problems.append(f"type {'.'.join(names)} is not a built-in type")
        self.walk(v.get("arg"), ctes)

    def columnref(self, v: dict[str, Any], ctes: frozenset[str]) -> None:
        parts = v.get("fields", [])
        if parts and "A_Star" in parts[-1]:
            self.star = True
        elif parts:
            self.columns.add(parts[-1].get("String", {}).get("sval", ""))

    def a_star(self, v: dict[str, Any], ctes: frozenset[str]) -> None:
        self.star = True

    def select(self, v: dict[str, Any], ctes: frozenset[str]) -> None:
        self.walk_select(v, ctes)

    def nothing(self, v: dict[str, Any], ctes: frozenset[str]) -> None:
        return

    # -- results -----------------------------------------------------------------------------
    def touched_fields(self) -> set[str]:
        out: set[str] = set()
        for t in self.protected:
            for col, _ in t.columns:
                if self.star or col in self.columns:
                    f = t.field_of(col)
                    if f:
                        out.add(f)
        return out

    def attribute(self, sel: dict[str, Any], *, force: bool = False) -> None:
        """Append the hidden patient-key column to a plain SELECT over a patient table that
        does not already return the key (only where it cannot change the result)."""
        if not self.protected or self.problems:
            return
        if (
            sel.get("op", "SETOP_NONE") != "SETOP_NONE"
            or sel.get("distinctClause")
            or sel.get("groupClause")
            or sel.get("havingClause")
            or sel.get("valuesLists")
            or sel.get("groupDistinct")
        ):
            return
        targets = sel.get("targetList") or []
        if not targets or self._aggregates(targets):
            return
        rel = self._top_protected(sel.get("fromClause") or [])
        if rel is None:
            return
        rv, t = rel
        if not t.key:
            return
        for tgt in [] if force else targets:  # COPY has no column origins: always add it
            val = tgt.get("ResTarget", {}).get("val", {})
            parts = val.get("ColumnRef", {}).get("fields", [])
            if parts and (
                "A_Star" in parts[-1] or parts[-1].get("String", {}).get("sval") == t.key
            ):
                return  # the key comes back in the result already (seen by column origin)
        last = targets[-1]["ResTarget"]
        stop = self.text.char(len(self.text.raw))
        at = self.text.list_end(self.text.char(last["location"]), stop)
        alias = quote_ident(self._aliases.get(id(rv), t.name))
        self.edits.append((at, at, f", {alias}.{quote_ident(t.key)} AS {HIDDEN_KEY} "))
        self.hidden = True

    def _top_protected(self, items: list[Any]) -> tuple[dict[str, Any], TableMap] | None:
        found: list[tuple[dict[str, Any], TableMap]] = []

        def visit(n: dict[str, Any]) -> None:
            if "RangeVar" in n:
                rv = n["RangeVar"]
                if id(rv) in self._aliases:
                    found.append((rv, self.cat.datamap.tables[rv["relname"]]))
            elif "JoinExpr" in n:
                visit(n["JoinExpr"].get("larg", {}))
                visit(n["JoinExpr"].get("rarg", {}))

        for it in items:
            visit(it)
        if not found:
            return None
        patient = self.cat.datamap.patient_table
        found.sort(key=lambda x: x[1].name != patient)
        return found[0]

    def _aggregates(self, targets: list[Any]) -> bool:
        stack: list[Any] = list(targets)
        while stack:
            n = stack.pop()
            if isinstance(n, list):
                stack.extend(n)
            elif isinstance(n, dict):
                if "SubLink" in n:
                    continue
                fc = n.get("FuncCall")
                if fc is not None and not fc.get("over"):
                    name = fc.get("funcname", [{}])[-1].get("String", {}).get("sval", "")
                    if fc.get("agg_star") or name in self.cat.aggregates:
                        return True
                stack.extend(v for v in n.values() if isinstance(v, (dict, list)))
        return False


_HANDLERS = {
    "RangeVar": _Walker.rangevar,
    "FuncCall": _Walker.funccall,
    "A_Expr": _Walker.a_expr,
    "TypeCast": _Walker.typecast,
    "ColumnRef": _Walker.columnref,
    "A_Star": _Walker.a_star,
    "SelectStmt": _Walker.select,
    "String": _Walker.nothing,
    "A_Const": _Walker.nothing,
}
