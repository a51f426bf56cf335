"""Metadata a person reads in the UI: typed values, sensible precision, one sentence per step.

Dagster shows a raw Python value as it comes: a float32 learning rate as `0.0010000000474974513`,
a Spark `sum` as `18.0`, a storage folder as plain text. Every asset passes its metadata through
`readable` before handing it to Dagster, so counts are integers, floats keep 6 significant digits
(a learning rate reads as configured), storage locations are path or URL values, nested records
are JSON, and a Spark schema becomes `dagster/column_schema`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import dagster as dg

SIGNIFICANT_DIGITS = 6
URI_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
PATH_KEYS = frozenset({"path", "uri"})
"""Keys (or key suffixes `_path`, `_uri`) whose text values are storage locations."""


def rounded(value: float) -> float:
    """`value` with `SIGNIFICANT_DIGITS` significant digits: float32 noise gone, NaN/inf kept."""
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}") if math.isfinite(value) else value


def _plain(value: Any) -> Any:
    """A JSON-able copy of a nested record with its floats rounded."""
    if isinstance(value, float):
        return rounded(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def location(value: str) -> dg.MetadataValue:
    """A storage location: a URL when it has a scheme other than file://, else a path."""
    if URI_SCHEME.match(value) and not value.startswith("file://"):
        return dg.MetadataValue.url(value)
    return dg.MetadataValue.path(value.removeprefix("file://"))


def is_location_key(key: str) -> bool:
    return key in PATH_KEYS or key.endswith(("_path", "_uri"))


def readable_value(key: str, value: Any) -> Any:
    """One metadata value as Dagster should show it (already typed values pass through)."""
    if isinstance(value, dg.MetadataValue | dg.TableSchema):
        return value
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(rounded(value))
    if isinstance(value, str):
        return location(value) if is_location_key(key) else dg.MetadataValue.text(value)
    if value is None:
        return dg.MetadataValue.null()
    if isinstance(value, Mapping | list | tuple):
        return dg.MetadataValue.json(_plain(value))
    return dg.MetadataValue.text(str(value))


def readable(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Every value of `metadata` through `readable_value`."""
    return {key: readable_value(key, value) for key, value in metadata.items()}


def count(value: float | int | None) -> int:
    """A Spark `sum` of 0/1 flags (or a row count) as the integer it is; None (no rows) is 0."""
    return round(value) if value is not None else 0


def column_schema(fields: list[tuple[str, str]]) -> dg.TableSchema:
    """`dagster/column_schema` from (name, Spark type string) pairs, in stored order."""
    return dg.TableSchema(columns=[dg.TableColumn(name=name, type=kind) for name, kind in fields])


def sentence(what: str, metadata: Mapping[str, Any]) -> str:
    """One log line for a stored partition: `what: 160 rows, episodes_started 11, ... → path`."""
    parts: list[str] = []
    where = ""
    for key, value in metadata.items():
        shown = value.value if isinstance(value, dg.MetadataValue) else value
        if key == "dagster/row_count":
            parts.insert(0, f"{shown:,} rows")
        elif is_location_key(key):
            where = f"; stored at {shown}"
        elif isinstance(shown, bool | int | float | str) and not key.startswith("dagster/"):
            text = f"{rounded(shown):g}" if isinstance(shown, float) else shown
            parts.append(f"{key.replace('_', ' ')} {text}")
    return f"{what}: {', '.join(parts)}{where}"
