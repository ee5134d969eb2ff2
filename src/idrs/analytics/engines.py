"""The log's analytics on DuckDB (default) or Apache Spark, from one definition of each query.

Every analytic query is written once, in DuckDB's SQL dialect. On DuckDB it runs as written.
On Spark it is transpiled with SQLGlot (``read="duckdb", write="spark"``) and then rewritten
where the two engines give the same SQL text different meanings, so that both engines return
the same rows. Each rewrite below is one of :data:`REWRITES` (documented in
docs/architecture.md, "Analytics engines"):

``list(x ORDER BY k…)``
    DuckDB keeps the order; SQLGlot turns it into ``COLLECT_LIST(x)``, whose order Spark
    does not define. Rewritten to ``TRANSFORM(ARRAY_SORT(COLLECT_LIST(STRUCT(k IS NULL, k…,
    x))), s -> s.x)``: sorted on the keys, then the keys dropped. The ``k IS NULL`` flag
    before each key keeps DuckDB's NULLs-last order (Spark sorts a NULL struct field first);
    ``DESC`` keys are refused rather than mistranslated.
``isodow(t)``
    ISO day of week (Monday 1 … Sunday 7). SQLGlot writes ``DAYOFWEEK(t) % 7 + 1``, which is
    off (Spark's ``DAYOFWEEK`` counts from Sunday = 1): rewritten to ``WEEKDAY(t) + 1``.
``epoch_us(t)``
    microseconds since the epoch: Spark's ``UNIX_MICROS(t)``.
``list_has_any(a, b)``
    SQLGlot writes ``a && b``, which Spark cannot parse: rewritten to ``ARRAYS_OVERLAP(a, b)``
    (the same for lists without NULL elements, as the reason codes are).
``list_intersect(a, b)``
    Spark's ``ARRAY_INTERSECT(a, b)`` (both: the distinct common elements).
``timezone('UTC', naive)``
    DuckDB reads the naive timestamp as UTC; Spark has no ``TIMEZONE`` function: rewritten to
    ``CAST(text AS TIMESTAMP)``, read in the session time zone, which is UTC on both engines.
``array_length(l)`` / ``len(l)`` on a list
    SQLGlot maps ``len`` to ``LENGTH`` (string length on Spark): the queries write
    ``array_length`` (``SIZE`` on Spark, with ``spark.sql.legacy.sizeOfNull=false`` so that
    the size of NULL is NULL as on DuckDB, not -1).
Integer division and ``/``
    ``/`` divides as floating point on both; DuckDB's ``//`` becomes Spark's ``DIV``.
NULL ordering
    DuckDB sorts NULLs last in ascending order, Spark first: SQLGlot writes ``NULLS LAST``
    on every ``ORDER BY`` key and window order that does not say.
List subscripts
    DuckDB counts from 1, Spark from 0: SQLGlot subtracts one.
Time zone
    Both sessions run in UTC (DuckDB ``SET TimeZone``, ``spark.sql.session.timeZone``), so
    ``CAST(t AS DATE)`` and ``hour(t)`` are the UTC day and hour on both.
Parameters
    ``?`` placeholders are bound by DuckDB; for Spark they are numbered in the order of the
    text (SQLGlot's tokenizer finds them) and replaced by typed literals built by SQLGlot
    (never by pasting values into the text).
``CREATE OR REPLACE TABLE x AS q``
    a cached temporary view on Spark (a table of this run only, as on DuckDB);
    ``CREATE OR REPLACE VIEW`` a temporary view.

Spark runs in local mode unless ``IDRS_SPARK_MASTER`` names a cluster
(``spark://host:7077``, ``yarn``, ``k8s://…``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import sqlglot
from sqlglot import TokenType, exp

from idrs.errors import IdrsError

ENGINES = ("duckdb", "spark")
DEFAULT_ENGINE = "duckdb"
#: the Spark master; local mode (one machine, every core) unless set
SPARK_MASTER_ENV = "IDRS_SPARK_MASTER"

REWRITES = ("ordered list", "isodow", "epoch_us", "list_intersect", "list_has_any", "timezone", "array_length", "division",
            "null ordering", "subscripts", "time zone", "parameters", "create table")


class UnknownEngine(IdrsError):
    """An engine name that is not one of :data:`ENGINES`."""


def check_engine(name: str | None) -> str:
    """The engine's canonical name; UnknownEngine (naming the choices) when it is not one."""
    value = (name or DEFAULT_ENGINE).strip().lower()
    if value not in ENGINES:
        raise UnknownEngine(
            f"unknown analytics engine {name!r}: choose one of {', '.join(ENGINES)}")
    return value


class Result(Protocol):
    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...


class Connection(Protocol):
    """What detection and the reports need of an engine (a DuckDB connection has it)."""

    def execute(self, sql: str, parameters: Any = None) -> Any: ...

    def register(self, view_name: str, python_object: Any) -> Any: ...

    def unregister(self, view_name: str) -> Any: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- DuckDB


def duckdb_connect() -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute("SET TimeZone = 'UTC'")
    return con


# ---------------------------------------------------------------- transpiling


def _literal(value: Any) -> exp.Expression:
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | np.integer):
        return exp.Literal.number(int(value))
    if isinstance(value, float | np.floating):
        return exp.Literal.number(repr(float(value)))
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise IdrsError("a timestamp parameter must carry its UTC offset")
        text = value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
        return exp.cast(exp.Literal.string(text), exp.DataType.build("TIMESTAMP"))
    if isinstance(value, date):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("DATE"))
    if isinstance(value, list | tuple | np.ndarray):
        return exp.Array(expressions=[_literal(v) for v in value])
    raise IdrsError(f"cannot bind a parameter of type {type(value).__name__}")


def _parse(sql: str, params: Sequence[Any] | None) -> Any:
    """Parse DuckDB SQL with each ``?`` bound to its parameter as a typed literal.

    The ``?`` are found by SQLGlot's tokenizer (so a ``'?'`` inside a string stays) and
    numbered in the order of the text before parsing: a walk of the parsed tree would meet a
    ``WITH`` clause's parameters after the main query's."""
    values = list(params or [])
    marks = [t for t in sqlglot.Dialect.get_or_raise("duckdb").tokenize(sql)
             if t.token_type == TokenType.PLACEHOLDER and t.text == "?"]
    if len(marks) != len(values):
        raise IdrsError(f"the query has {len(marks)} parameters, {len(values)} given")
    for k, mark in reversed(list(enumerate(marks))):
        sql = f"{sql[:mark.start]}$idrs_p{k}{sql[mark.end + 1:]}"
    tree = sqlglot.parse_one(sql, read="duckdb")
    for holder in list(tree.find_all(exp.Placeholder)):
        name = str(holder.this or "")
        if name.startswith("idrs_p"):
            holder.replace(_literal(values[int(name[len("idrs_p"):])]))
    return tree


def _ordered_list(node: exp.Expression) -> exp.Expression:
    """``list(x ORDER BY k…)`` → ``TRANSFORM(ARRAY_SORT(COLLECT_LIST(STRUCT(k…, x))), s -> s.v)``."""
    if not (isinstance(node, exp.ArrayAgg) and isinstance(node.this, exp.Order)):
        return node
    order = node.this
    for o in order.expressions:
        if o.args.get("desc"):
            raise IdrsError("list(... ORDER BY ... DESC) has no Spark rewrite yet")
    fields = []
    for i, o in enumerate(order.expressions):
        # a struct sorts a NULL field first: a flag before each key puts NULLs where DuckDB
        # does (last unless NULLS FIRST is written)
        flag: exp.Expression = exp.Is(this=o.this.copy(), expression=exp.null())
        if o.args.get("nulls_first"):
            flag = exp.Not(this=flag)
        fields.append(exp.PropertyEQ(this=exp.to_identifier(f"n{i}"), expression=flag))
        fields.append(exp.PropertyEQ(this=exp.to_identifier(f"k{i}"), expression=o.this.copy()))
    fields.append(exp.PropertyEQ(this=exp.to_identifier("v"), expression=order.this.copy()))
    return sqlglot.parse_one("TRANSFORM(ARRAY_SORT(COLLECT_LIST(__s)), s -> s.v)", read="spark") \
        .transform(lambda n: exp.Struct(expressions=fields)
                   if isinstance(n, exp.Column) and n.name == "__s" else n)


def _spark_functions(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.ArrayOverlaps):
        return exp.Anonymous(this="arrays_overlap",
                             expressions=[node.this.copy(), node.expression.copy()])
    if isinstance(node, exp.DayOfWeekIso):
        return exp.Add(this=exp.Anonymous(this="weekday", expressions=[node.this.copy()]),
                       expression=exp.Literal.number(1))
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower()
        if name == "epoch_us" and len(node.expressions) == 1:
            return exp.Anonymous(this="unix_micros", expressions=[node.expressions[0].copy()])
        if name in ("list_intersect", "list_has_any", "array_intersect") and len(node.expressions) == 2:
            return exp.Anonymous(this="array_intersect",
                                 expressions=[e.copy() for e in node.expressions])
        if name == "timezone" and len(node.expressions) == 2:
            zone, value = node.expressions
            if not (isinstance(zone, exp.Literal) and zone.this.upper() == "UTC"):
                raise IdrsError("timezone() is transpiled for 'UTC' only")
            while isinstance(value, exp.Cast) and value.to.this in (
                    exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ):
                value = value.this
            return exp.cast(value.copy(), exp.DataType.build("TIMESTAMP"))
    return node


def to_spark(sql: str, params: Sequence[Any] | None = None) -> str:
    """One DuckDB query (``?`` parameters bound to ``params``) as Spark SQL, with the rewrites
    of the module docstring."""
    tree = _parse(sql, params).transform(_ordered_list).transform(_spark_functions)
    return str(tree.sql(dialect="spark"))


# ---------------------------------------------------------------- Spark

_SESSION: Any = None
_SESSION_LOCK = threading.Lock()

#: local mode: small shuffles (the log of one machine), no web UI, UTC
SPARK_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.legacy.sizeOfNull": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "true",
    # short analytic runs: the JIT's first tier only, less compiling on a busy machine
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
}


def spark_session(master: str | None = None, conf: Mapping[str, str] | None = None) -> Any:
    """The process's SparkSession (made once): ``master`` or ``IDRS_SPARK_MASTER`` or local."""
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            try:
                from pyspark.sql import SparkSession
            except ImportError as exc:  # pragma: no cover - pyspark is a dependency
                raise IdrsError(f"the Spark engine needs pyspark: {exc}") from None
            if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
                raise IdrsError("the Spark engine needs Java 17 or later (`java` is not on PATH)")
            builder = SparkSession.builder.appName("idrs-analytics").master(
                master or os.environ.get(SPARK_MASTER_ENV) or "local[*]")
            for k, v in {**SPARK_CONF, **(conf or {})}.items():
                builder = builder.config(k, v)
            _SESSION = builder.getOrCreate()
            _SESSION.sparkContext.setLogLevel("ERROR")
        return _SESSION


def stop_spark() -> None:
    """Stop the process's SparkSession (the next use starts a new one)."""
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is not None:
            _SESSION.stop()
            _SESSION = None


def _py(value: Any) -> Any:
    """A collected Spark value as DuckDB's Python API gives it."""
    from pyspark.sql import Row

    if isinstance(value, Row):
        return {k: _py(v) for k, v in value.asDict().items()}
    if isinstance(value, list):
        return [_py(v) for v in value]
    if isinstance(value, datetime):
        # collect() gives naive local time: make it the aware UTC instant DuckDB gives
        return value.astimezone(UTC) if value.tzinfo is None else value
    return value


class _Rows:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        part, self._rows = self._rows, []
        return part

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.fetchmany(1)[0] if self._rows else None

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        part, self._rows = self._rows[:size], self._rows[size:]
        return part


class SparkConnection:
    """A DuckDB-like connection over a SparkSession: ``execute`` transpiles DuckDB SQL."""

    def __init__(self, session: Any | None = None) -> None:
        self.spark = session or spark_session()
        self._views: set[str] = set()
        self._cached: dict[str, Any] = {}
        self.scratch = Path(tempfile.mkdtemp(prefix="idrs-spark-"))
        self.statements = 0

    def sql(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """A DataFrame for one DuckDB query."""
        self.statements += 1
        return self.spark.sql(to_spark(sql, params))

    def execute(self, sql: str, parameters: Any = None) -> _Rows:
        tree = sqlglot.parse_one(sql, read="duckdb")
        if isinstance(tree, exp.Create) and tree.kind in ("TABLE", "VIEW") \
                and isinstance(tree.expression, exp.Query):
            name = tree.this.name if isinstance(tree.this, exp.Table) else tree.this.this.name
            query = tree.expression.sql(dialect="duckdb")
            df = self.sql(query, parameters)
            if tree.kind == "TABLE":
                df = self._materialize(name, df)
            self.view(name, df)
            return _Rows([])
        df = self.sql(sql, parameters)
        return _Rows([tuple(_py(v) for v in r) for r in df.collect()])

    def view(self, name: str, df: Any) -> None:
        df.createOrReplaceTempView(name)
        self._views.add(name)

    def register(self, view_name: str, python_object: Any) -> None:
        """A view of columns (name → NumPy array), typed from the arrays' dtypes."""
        from pyspark.sql import types as T

        cols = dict(python_object)
        fields = []
        for name, arr in cols.items():
            a = np.asarray(arr)
            if a.dtype == np.bool_:
                t: Any = T.BooleanType()
            elif np.issubdtype(a.dtype, np.integer):
                t = T.LongType()
            elif np.issubdtype(a.dtype, np.floating):
                t = T.DoubleType()
            else:
                t = T.StringType()
            fields.append(T.StructField(name, t, nullable=True))
        columns = [[_plain(v) for v in np.asarray(a).tolist()] for a in cols.values()]
        rows = list(zip(*columns, strict=True)) if columns else []
        self.view(view_name, self.spark.createDataFrame(rows, T.StructType(fields)))

    def unregister(self, view_name: str) -> None:
        # a table made from the view keeps its data (cached); the view itself goes
        self.spark.catalog.dropTempView(view_name)
        self._views.discard(view_name)

    def read_parquet(self, name: str, paths: Sequence[str | Path], *, append: bool = False) -> None:
        """View ``name`` over Parquet files (added to the view when ``append``)."""
        df = self.spark.read.parquet(*[str(p) for p in paths])
        if append and name in self._views:
            df = self.spark.table(name).unionByName(df)
        self.view(name, self._materialize(name, df))

    def _materialize(self, name: str, df: Any) -> Any:
        """Compute ``df`` now and keep its rows (as DuckDB's table): a local checkpoint, which
        also cuts the plan short, so that later queries are not planned over every earlier one."""
        df = df.localCheckpoint(eager=True)
        old = self._cached.pop(name, None)
        self._cached[name] = df
        if old is not None:
            old.unpersist()
        return df

    def close(self) -> None:
        for df in self._cached.values():
            df.unpersist()
        self._cached.clear()
        for name in list(self._views):
            self.spark.catalog.dropTempView(name)
        self._views.clear()
        shutil.rmtree(self.scratch, ignore_errors=True)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def connect(engine: str | None = None) -> Any:
    """A connection on ``engine`` (``duckdb`` or ``spark``), in UTC."""
    name = check_engine(engine)
    if name == "spark":
        return SparkConnection()
    return duckdb_connect()


def is_spark(con: Any) -> bool:
    return isinstance(con, SparkConnection)


@contextlib.contextmanager
def staged(con: Any, *tables: str) -> Iterator[Any]:
    """A DuckDB connection in which the caller creates ``tables`` (its own input, loaded and
    decoded once, in DuckDB's SQL), which are then tables of ``con`` on either engine.

    On DuckDB it is ``con`` itself. On Spark it is a local DuckDB whose tables are written to
    Parquet in the connection's scratch directory when the block ends, and read by Spark from
    there (the same columns and types), as detection's log is (``detection.logscan.load``).
    The files stay until the connection is closed.
    """
    if not is_spark(con):
        yield con
        return
    local = duckdb_connect()
    try:
        yield local
        for name in tables:
            path = con.scratch / f"{name}.parquet"
            quoted = str(path).replace("'", "''")
            local.execute(f'COPY "{name}" TO \'{quoted}\' (FORMAT PARQUET)')  # noqa: S608
            # a view over the file (no copy of it kept in Spark): read once per use, as
            # DuckDB reads its table
            con.view(name, con.spark.read.parquet(str(path)))
    finally:
        local.close()


# ---------------------------------------------------------------- named queries


#: Named queries over an ``idrs audit export --format parquet`` directory, whose entries are
#: the view ``entries`` (one definition each, DuckDB dialect; the Spark text is transpiled).
QUERIES: dict[str, str] = {
    # refusals per day and command, with the distinct employees refused
    "refusals_by_day": """
        SELECT CAST("time" AS DATE) AS day, "object"['command'] AS command, count(*) AS refusals,
               count(DISTINCT actor) AS employees
        FROM entries WHERE type = 'access:research:decide' AND outcome = 'deny'
        GROUP BY 1, 2 ORDER BY 1, 2""",
    # research decisions per employee: how many, refused, share refused, first and last time
    "research_by_employee": """
        SELECT actor, count(*) AS decisions,
               count(*) FILTER (WHERE outcome = 'deny') AS refused,
               round(count(*) FILTER (WHERE outcome = 'deny') / count(*), 6) AS refused_share,
               count(*) // 10 AS tens, min("time") AS first, max("time") AS last,
               list("index" ORDER BY "time", "index")[1] AS first_index
        FROM entries WHERE type = 'access:research:decide'
        GROUP BY actor ORDER BY decisions DESC, actor""",
    # accesses outside working hours (weekends by ISO day of week, before 07:00, after 19:00)
    "after_hours": """
        SELECT actor, count(*) AS accesses
        FROM entries WHERE type = 'access:research:decide'
          AND (isodow("time") >= 6 OR hour("time") < 7 OR hour("time") >= 19)
        GROUP BY actor ORDER BY accesses DESC, actor""",
}


#: Named queries over tables the caller stages (:func:`staged`), one definition each, in
#: DuckDB's dialect (the Spark text is transpiled); run with :func:`run_named`.
TABLE_QUERIES: dict[str, str] = {
    # The oversight report's "actual access" (idrs.oversight.report): over
    #   oa_entries(actor, day, type, outcome, command, reasons VARCHAR[], taxpayer,
    #              matches VARCHAR[])  the scope's entries in the period (day: 'YYYY-MM-DD')
    #   oa_shown(seid, command, class)   the classes an allowed answer of the command carried
    #   oa_sensitive(category, pseudonym) the sensitive accounts by category
    # one row (facet, seid, key, n) per figure: per principal their allowed and denied
    # decisions, accesses by command and by class, denials by reason code (UNSPECIFIED when
    # none is given), distinct taxpayers touched (the one looked up, else the matches of a
    # search) and sensitive accounts touched by category; over everyone the distinct
    # taxpayers and sensitive accounts, and per day the accesses and the denials.
    "actual_access": """
        WITH decided AS (
            SELECT actor AS seid, day, reasons, taxpayer, matches,
                   coalesce(nullif(command, ''), '?') AS command,
                   CASE WHEN outcome IN ('deny', 'denied') THEN 'denied'
                        WHEN outcome IN ('allow', 'allowed', 'success') THEN 'allowed'
                   END AS result
            FROM oa_entries
            WHERE type IN ('access:research:decide', 'access:adjustment:decide')),
        allowed AS (SELECT * FROM decided WHERE result = 'allowed'),
        denied AS (SELECT * FROM decided WHERE result = 'denied'),
        touched AS (
            SELECT seid, taxpayer AS tp FROM allowed WHERE coalesce(taxpayer, '') <> ''
            UNION ALL
            SELECT seid, unnest(matches) AS tp FROM allowed WHERE coalesce(taxpayer, '') = ''),
        codes AS (
            SELECT seid, unnest(CASE WHEN array_length(reasons) > 0 THEN reasons
                                     ELSE ['UNSPECIFIED'] END) AS code
            FROM denied),
        sensitive AS (
            SELECT t.seid, s.category, t.tp
            FROM touched t JOIN oa_sensitive s ON s.pseudonym = t.tp),
        -- one row per thing counted, then one aggregation (one shuffle on Spark)
        facts AS (
            SELECT 'allowed' AS facet, seid, CAST(NULL AS VARCHAR) AS key,
                   CAST(NULL AS VARCHAR) AS tp FROM allowed
            UNION ALL SELECT 'denied', seid, NULL, NULL FROM denied
            UNION ALL SELECT 'command', seid, command, NULL FROM allowed
            UNION ALL SELECT 'class', a.seid, c.class, NULL
                FROM allowed a JOIN oa_shown c ON c.seid = a.seid AND c.command = a.command
            UNION ALL SELECT 'reason', seid, code, NULL FROM codes
            UNION ALL SELECT 'day_allowed', NULL, day, NULL FROM allowed
            UNION ALL SELECT 'day_denied', NULL, day, NULL FROM denied
            UNION ALL SELECT 'taxpayers', seid, NULL, tp FROM touched
            UNION ALL SELECT 'all_taxpayers', NULL, NULL, tp FROM touched
            UNION ALL SELECT 'sensitive', seid, category, tp FROM sensitive
            UNION ALL SELECT 'all_sensitive', NULL, category, tp FROM sensitive)
        SELECT facet, seid, key,
               CASE WHEN facet IN ('taxpayers', 'all_taxpayers', 'sensitive', 'all_sensitive')
                    THEN count(DISTINCT tp) ELSE count(*) END AS n
        FROM facts GROUP BY facet, seid, key
        ORDER BY facet, seid, key""",
}


def run_named(con: Any, name: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of the named query of :data:`TABLE_QUERIES` over the tables staged on ``con``."""
    if name not in TABLE_QUERIES:
        raise IdrsError(f"unknown query {name!r}: choose one of {', '.join(sorted(TABLE_QUERIES))}")
    return [tuple(r) for r in con.execute(TABLE_QUERIES[name], list(params or [])).fetchall()]


def _parquet_files(export: Path) -> list[str]:
    files = sorted(str(p) for p in Path(export).rglob("*.parquet"))
    if not files:
        raise IdrsError(f"{export}: no Parquet files (write one with "
                        "`idrs audit export --format parquet --out DIR`)")
    return files


def open_export(con: Any, export: Path) -> None:
    """View ``entries`` over a Parquet export on either engine (the ``date`` partition too)."""
    files = _parquet_files(export)
    if is_spark(con):
        df = con.spark.read.option("basePath", str(export)).parquet(*files)
        con.view("entries", df)
    else:
        con.read_parquet(files, hive_partitioning=True).create_view("entries", replace=True)


def run_query(name: str, export: Path, *, engine: str | None = None,
              con: Any = None, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of the named query over the Parquet export ``export`` on ``engine``."""
    if name not in QUERIES:
        raise IdrsError(f"unknown query {name!r}: choose one of {', '.join(sorted(QUERIES))}")
    own = con is None
    con = con if con is not None else connect(engine)
    try:
        open_export(con, export)
        rows: list[tuple[Any, ...]] = [tuple(r) for r in
                                       con.execute(QUERIES[name], list(params or [])).fetchall()]
        return rows
    finally:
        if own:
            con.close()
