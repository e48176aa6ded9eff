"""Versioned raw SQL for the tenant schema, loaded by migrations."""

from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent


def read_sql(name: str) -> str:
    return (SQL_DIR / name).read_text()
