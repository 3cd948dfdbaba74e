"""Apache Spark (PySpark). ``local[2]`` in tests; a cluster URL (``spark://``, ``yarn``,
``k8s://``) in production, with events and the reference snapshot on shared storage.

Spark starts listening on a non-loopback interface unless told otherwise; phiguard binds the
driver to 127.0.0.1 by default (``SPARK_LOCAL_IP``, ``spark.driver.bindAddress``) and turns
the web UI off. On a cluster set ``PHIGUARD_DETECT_SPARK_CONF`` to override both.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from phiguard.detection.engines import EVENT_SCHEMA
from phiguard.errors import InputError, UsageError


class SparkDialect:
    name = "spark"

    def ts_us(self, col: str) -> str:
        return f"unix_micros({col})"

    def ts_lit(self, ts: datetime) -> str:
        return f"TIMESTAMP '{ts.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}+00:00'"

    def day_no(self, col: str) -> str:
        return f"unix_date({col})"

    def idiv(self, a: str, b: int) -> str:
        return f"(({a}) div {int(b)})"

    def date_of(self, x: str) -> str:
        return f"date_add(DATE '1970-01-01', CAST({x} AS INT))"

    def row_id(self) -> str:
        """A unique integer per row of the (materialised) relation, to key joins with."""
        return "monotonically_increasing_id()"

    def sample(self, col: str, n: int, where: str = "true") -> str:
        return (
            f"slice(array_sort(collect_set({col}) FILTER (WHERE {col} IS NOT NULL "
            f"AND ({where}))), 1, {int(n)})"
        )

    def sorted_set(self, col: str, where: str = "true") -> str:
        return f"array_sort(collect_set({col}) FILTER (WHERE {col} IS NOT NULL AND ({where})))"

    def merge_samples(self, col: str, n: int) -> str:
        return f"slice(array_sort(array_distinct(flatten(collect_list({col})))), 1, {int(n)})"

    def csv_subset(self, small: str, big: str) -> str:
        return f"(size(array_except(split({small}, ','), split({big}, ','))) = 0)"

    def quantile(self, col: str, q: float) -> str:
        return f"percentile({col}, {float(q)})"

    def to_str(self, col: str) -> str:
        return f"CAST({col} AS STRING)"


def build_session(master: str, timezone: str, conf: list[tuple[str, str]]) -> Any:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise UsageError("engine = spark needs PySpark: pip install 'phiguard[spark]'") from exc
    builder = (
        SparkSession.builder.master(master)
        .appName("phiguard-detect")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", timezone)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if master.startswith("local"):
        # One machine: few shuffle partitions; a cluster keeps Spark's defaults.
        builder = builder.config("spark.sql.shuffle.partitions", "2")
    for key, value in conf:
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@dataclass
class SparkEngine:
    spark: Any
    snapshot_dir: str
    name: str = "spark"
    chunked: bool = False  # Spark partitions the work itself
    dialect: SparkDialect = field(default_factory=SparkDialect)
    _cached: list[Any] = field(default_factory=list)
    eager: bool = False  # True: compute each cached stage as it is declared (per-stage timings)

    @classmethod
    def create(cls, *, settings: Any, detect: Any, home: Any = None) -> SparkEngine:
        master = getattr(settings, "spark_master", "local[2]")
        tz = getattr(settings, "timezone", "Asia/Hong_Kong")
        conf = detect.spark_conf_pairs() if detect is not None else []
        spark = build_session(master, tz, conf)
        if detect is not None and home is not None:
            base = detect.snapshot_dir(Path(home))
        else:
            import tempfile

            base = tempfile.mkdtemp(prefix="phiguard-snapshot-")
        return cls(spark=spark, snapshot_dir=f"{base.rstrip('/')}/run-{uuid.uuid4().hex[:12]}")

    def register(self, name: str, table: pa.Table) -> None:
        """Reference tables go through Parquet so executors on a cluster can read them."""
        target = f"{self.snapshot_dir}/{name}.parquet"
        if "://" in target:
            import pyarrow.fs as pafs

            fs, path = pafs.FileSystem.from_uri(target.replace("s3a://", "s3://"))
            pq.write_table(table, path, filesystem=fs)
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, target)
        self.spark.read.parquet(target).createOrReplaceTempView(name)

    def register_events(self, uri: str | None) -> None:
        df = None
        if uri and ("://" in uri or _has_parquet(Path(uri))):
            try:
                df = self.spark.read.parquet(uri)
            except Exception as exc:  # Spark raises AnalysisException and friends
                raise InputError(f"cannot read the access events at {uri}: {exc}") from exc
        if df is None:
            self.register("events_raw", EVENT_SCHEMA.empty_table())
            return
        df.createOrReplaceTempView("events_src")
        names = set(df.columns)
        ts_type = dict(df.dtypes).get("ts", "timestamp")
        # A Parquet timestamp written without the UTC flag reads as timestamp_ntz: it is UTC.
        ts = "ts" if ts_type == "timestamp" else "to_utc_timestamp(CAST(ts AS TIMESTAMP), 'UTC')"
        select = []
        for f in EVENT_SCHEMA:
            if f.name == "ts":
                select.append(f"{ts} AS ts")
            elif f.name == "seq":
                select.append(
                    "CAST(seq AS BIGINT) AS seq"
                    if "seq" in names
                    else "CAST(NULL AS BIGINT) AS seq"
                )
            elif f.name in names:
                select.append(f"CAST({f.name} AS STRING) AS {f.name}")
            else:
                select.append(f"CAST(NULL AS STRING) AS {f.name}")
        self.spark.sql(f"SELECT {', '.join(select)} FROM events_src").createOrReplaceTempView(
            "events_raw"
        )

    def materialise(self, name: str, sql: str) -> None:
        df = self.spark.sql(sql).cache()
        self._cached.append(df)
        df.createOrReplaceTempView(name)
        if self.eager:
            df.count()

    def append(self, name: str, sql: str) -> None:
        df = self.spark.table(name).unionByName(self.spark.sql(sql)).cache()
        self._cached.append(df)
        df.createOrReplaceTempView(name)

    def view(self, name: str, sql: str) -> None:
        self.spark.sql(sql).createOrReplaceTempView(name)

    def drop(self, name: str) -> None:
        # Cached DataFrames stay until close(): a downstream cache may not be computed yet
        # (Spark caches lazily), and unpersisting early would recompute the stage.
        pass

    def query(self, sql: str) -> list[dict[str, Any]]:
        return [r.asDict(recursive=True) for r in self.spark.sql(sql).collect()]

    def arrow(self, sql: str) -> pa.Table:
        return pa.Table.from_pylist(self.query(sql))

    def close(self) -> None:
        for df in self._cached:
            df.unpersist()
        self._cached.clear()
        if "://" not in self.snapshot_dir:
            shutil.rmtree(self.snapshot_dir, ignore_errors=True)
        # The session is left running: starting Spark costs seconds, and a later run in the
        # same process (tests, `phiguard serve`) reuses it through getOrCreate().


def _has_parquet(path: Path) -> bool:
    if path.is_file():
        return True
    return path.is_dir() and any(path.rglob("*.parquet"))
