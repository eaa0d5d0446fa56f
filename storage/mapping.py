"""Rows to dataclasses and back: columns are named like the fields, so one rule maps both."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

T = TypeVar("T")


def row_values(obj: Any, table: sa.Table, *, only: Iterable[str] | None = None) -> dict[str, Any]:
    """The object's fields that are columns of ``table`` (or just ``only``)."""
    names = set(only) if only is not None else {c.name for c in table.columns}
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name in names}


def from_row(cls: type[T], row: RowMapping, **extra: Any) -> T:
    """An instance of the dataclass ``cls`` from a row (columns that are no field are skipped)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {key: value for key, value in row.items() if key in names}
    return cls(**values, **extra)
