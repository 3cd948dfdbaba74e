"""Where Splink runs fuzzy linkage: DuckDB in process, or Apache Spark (``engine = spark``).

Both backends get the same Splink settings (``fuzzy._comparisons``, ``fuzzy._BLOCKING``),
written in SQL both dialects accept, and the same two tables (leaked records, decrypted
candidates), so they give the same links (``tests/leaks/test_spark.py``).

The candidate rows hold *decrypted* names and dates of birth. On DuckDB they stay in the
scanning process. On Spark they reach the executors' memory, so:

* Splink's default way of cutting long query plans on Spark writes intermediate tables as
  Parquet to the checkpoint folder: the blocked pairs and predictions (patient ids with their
  scores, i.e. who is in the leak), and with other settings the input columns themselves.
  phiguard uses ``persist`` instead: cached blocks in executor memory, unpersisted when the
  prediction has been collected.
* ``spark.io.encryption.enabled`` is on, so a cached block or shuffle file that spills to an
  executor's local disk is encrypted with a per-application key.
* On a cluster, transport between driver and executors must be protected by the cluster's
  own settings (``spark.authenticate``, ``spark.network.crypto.enabled``): see
  ``docs/dev/leaks.md`` (ADR 6).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from phiguard.errors import UsageError

# the input tables' columns and their types, the same on both backends
COLUMNS: tuple[tuple[str, str], ...] = (
    ("uid", "string"),
    ("root", "string"),
    ("hkid", "string"),
    ("hkid_known", "int"),
    ("hkid_pc", "string"),
    ("surname", "string"),
    ("given", "string"),
    ("anagram", "string"),
    ("name_zh", "string"),
    ("sex", "string"),
    ("birth_year", "int"),
    ("dob", "string"),
    ("phone", "string"),
)
FIELDS = tuple(name for name, _ in COLUMNS)

# Splink's own functions have different names per backend (the Spark one comes from the jar
# that ships with Splink); everything else in the comparisons is common SQL.
JARO_WINKLER = {"duckdb": "jaro_winkler_similarity", "spark": "jaro_winkler"}
ENGINES = tuple(JARO_WINKLER)


def check_engine(name: str) -> str:
    if name not in ENGINES:
        raise UsageError(f"unknown linkage engine {name!r} (expected 'duckdb' or 'spark')")
    return name


@contextmanager
def backend(engine: str, settings: Any) -> Iterator[Any]:
    """A function that registers a list of row dicts as a Splink input table on ``engine``;
    everything it made is dropped on exit."""
    logging.getLogger("splink").setLevel(logging.ERROR)
    if check_engine(engine) == "duckdb":
        with _duckdb() as register:
            yield register
    else:
        with _spark(settings) as register:
            yield register


@contextmanager
def _duckdb() -> Iterator[Any]:
    import duckdb
    import pandas as pd
    from splink.backends.duckdb import DuckDBAPI

    con = duckdb.connect(":memory:")
    db = DuckDBAPI(connection=con)

    def register(rows: list[dict[str, Any]], name: str) -> Any:
        return db.register(pd.DataFrame(rows, columns=list(FIELDS)), dataset_display_name=name)

    try:
        yield register
    finally:
        con.close()


def spark_session(settings: Any) -> Any:
    """The process's Spark session (started on first use, as for detection) with Splink's
    similarity functions available. Extra Spark settings: ``PHIGUARD_DETECT_SPARK_CONF``,
    the same string detection uses, so a home has one Spark configuration."""
    from phiguard.detection.engines.spark import build_session
    from phiguard.detection.settings import DetectionSettings

    conf = [("spark.io.encryption.enabled", "true"), *DetectionSettings().spark_conf_pairs()]
    spark = build_session(
        getattr(settings, "spark_master", "local[2]"),
        getattr(settings, "timezone", "Asia/Hong_Kong"),
        conf,
    )
    from splink.backends.spark import similarity_jar_location

    # ADD JAR works on a running session too (detection may have started it without the
    # jar), and ships the jar to executors on a cluster.
    spark.sql(f"ADD JAR '{similarity_jar_location()}'")
    return spark


@contextmanager
def _spark(settings: Any) -> Iterator[Any]:
    from pyspark.sql.types import IntegerType, StringType, StructField, StructType
    from splink.backends.spark import SparkAPI

    spark = spark_session(settings)
    kinds = {"string": StringType(), "int": IntegerType()}
    schema = StructType([StructField(n, kinds[t], True) for n, t in COLUMNS])
    persisted: list[Any] = []

    class _API(SparkAPI):
        """Remembers what Splink persisted so it can be dropped from executor memory."""

        def _break_lineage_and_repartition(self, df: Any, templated: str, physical: str) -> Any:
            out = super()._break_lineage_and_repartition(df, templated, physical)
            if out.is_cached:
                persisted.append(out)
            return out

    db = _API(spark_session=spark, break_lineage_method="persist")
    views: list[str] = []

    def register(rows: list[dict[str, Any]], name: str) -> Any:
        # An explicit schema: a column that is empty in this dump (no phone, no Chinese
        # name) has no type Spark could infer.
        df = spark.createDataFrame([tuple(r.get(f) for f in FIELDS) for r in rows], schema)
        table = db.register(df, dataset_display_name=name)
        views.append(table.physical_name)
        return table

    try:
        yield register
    finally:
        for df in persisted:
            df.unpersist()
        for view in views:
            spark.catalog.dropTempView(view)
