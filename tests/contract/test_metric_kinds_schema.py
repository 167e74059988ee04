"""The databases accept the metric kinds the domain knows (MetricKind), no more and no fewer.

A CHECK on a `metric` column is the schema's copy of the kinds: goals take the kinds with a goal
ceiling, any other table every kind. The constraints are read from freshly migrated databases, not
from the migration files, and each is evaluated by its own engine for every candidate id, so the
test holds whatever form a migration writes it in (BETWEEN, IN, comparisons).
"""

from __future__ import annotations

import re
import sqlite3

import psycopg2
import pytest

from fittrack.core.adapters.sqlite import SqliteDatabase
from fittrack.core.domain.metrics import MetricKind

ALL_KINDS = {kind.value for kind in MetricKind}
# What each table's metric column must take, where a CHECK limits it; every kind elsewhere.
ACCEPTED = {"goals": {kind.value for kind in MetricKind if kind.takes_goals}}
# Ids around the known ones: an id beyond the table, or 0, must be refused as surely as a known one is taken.
CANDIDATES = range(-1, max(ALL_KINDS) + 3)
METRIC = re.compile(r"\bmetric\b", re.IGNORECASE)


def test_the_embedded_databases_checks_take_exactly_the_metric_kinds(tmp_path):
    database = SqliteDatabase(tmp_path / "fittrack.db")
    database.migrate()
    try:
        checks = _sqlite_metric_checks(database.connection())
        assert "goals" in checks, "the goals table no longer checks its metric column"
        for table, expressions in checks.items():
            for expression in expressions:
                taken = {
                    n
                    for n in CANDIDATES
                    if database.connection()
                    .execute(f"SELECT ({expression}) FROM (SELECT ? AS metric)", (n,))
                    .fetchone()[0]
                }
                assert taken == ACCEPTED.get(table, ALL_KINDS), f"{table}: CHECK ({expression})"
    finally:
        database.close()


@pytest.mark.production
def test_the_production_databases_checks_take_exactly_the_metric_kinds(pg_database, pg_dsn):
    with psycopg2.connect(pg_dsn, connect_timeout=3) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_constraintdef(k.oid) FROM pg_constraint k"
            " JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (k.conkey)"
            " WHERE k.contype = 'c' AND a.attname = 'metric' AND n.nspname = current_schema()"
        )
        checks = cursor.fetchall()
        assert "goals" in {table for table, _ in checks}, "the goals table no longer checks its metric column"
        for table, definition in checks:
            expression = re.fullmatch(r"CHECK \((.*)\)(?: NOT VALID)?", definition, re.DOTALL).group(1)
            taken = set()
            for n in CANDIDATES:
                cursor.execute(f"SELECT ({expression}) FROM (VALUES (%s::smallint)) AS candidate (metric)", (n,))
                if cursor.fetchone()[0]:
                    taken.add(n)
            assert taken == ACCEPTED.get(table, ALL_KINDS), f"{table}: {definition}"
        conn.rollback()


def _sqlite_metric_checks(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Each table's CHECK expressions that name the metric column, from the schema SQLite keeps."""
    checks: dict[str, list[str]] = {}
    for table, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL"):
        for expression in _check_expressions(sql):
            if METRIC.search(expression):
                checks.setdefault(table, []).append(expression)
    return checks


def _check_expressions(sql: str) -> list[str]:
    """The text inside each CHECK (...) of a CREATE TABLE, nested parentheses and all."""
    expressions = []
    for match in re.finditer(r"\bCHECK\s*\(", sql, re.IGNORECASE):
        depth, start = 1, match.end()
        for end in range(start, len(sql)):
            depth += {"(": 1, ")": -1}.get(sql[end], 0)
            if depth == 0:
                expressions.append(sql[start:end])
                break
    return expressions
