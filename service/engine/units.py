"""UCUM units for measurement thresholds: a value is compared after conversion to the threshold's unit, and a value
that cannot be converted (mg/dL against mmol/L needs a molar mass; a missing unit against a real one) is never
compared as if it were in the right unit.

`{...}` annotations (UCUM's `{score}`) carry no dimension: `{score}`, `1` and no unit at all are a unitless
number. The UCUM registry (ucumvert on pint) is built once, when the first real unit is met.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

_ANNOTATION = re.compile(r"\{[^}]*\}")
UNITLESS = "1"


class UnitError(ValueError):
    """Why a value cannot be compared with a threshold's unit."""


def without_annotations(unit: str | None) -> str:
    """`{score}` -> ``, `mg{total}/dL` -> `mg/dL`: what a reader (and UCUM arithmetic) needs of a unit."""
    return _ANNOTATION.sub("", unit or "").strip()


def ucum(unit: str | None) -> str:
    """The unit with annotations removed; `1` for a unitless number."""
    bare = without_annotations(unit)
    return bare if bare not in ("", "1") else UNITLESS


@cache
def _registry() -> Any:
    from ucumvert import PintUcumRegistry

    return PintUcumRegistry()


@cache
def _quantity(unit: str) -> Any:
    try:
        return _registry().from_ucum(unit)
    except Exception as error:  # the parser raises its own errors (lark)
        raise UnitError(f"{unit!r} is not a UCUM unit") from error


def check_unit(unit: str) -> None:
    """Raise UnitError when a threshold's unit is not UCUM (at load)."""
    if ucum(unit) != UNITLESS:
        _quantity(ucum(unit))


def commensurable(unit: str | None, other: str | None) -> bool:
    """Whether a value in `unit` can be compared with one in `other`: the same dimension, by UCUM. A unitless
    number (`{score}`, `1`, none) goes only with another, or with a dimensionless unit such as `%`."""
    try:
        convert(1.0, unit, other)
    except UnitError:
        return False
    if ucum(other) == UNITLESS and ucum(unit) != UNITLESS:
        return bool(_quantity(ucum(unit)).dimensionless)
    return True


def convert(value: float, unit: str | None, target: str | None) -> float:
    """`value` in `unit`, expressed in `target`; raises UnitError when the two are not commensurable."""
    source, wanted = ucum(unit), ucum(target)
    if source == wanted:
        return value
    if wanted == UNITLESS:
        # A unitless score (0-10 pain) compares the number as sent, whatever label it carries (`/10`, `score`,
        # `points`): only a real physical unit (mg/dL) shows it is not a score. Missing a 9/10 pain because of
        # its label would cost more than comparing it.
        try:
            dimensionless = bool(_quantity(source).dimensionless)
        except UnitError:
            return value
        if dimensionless:
            return value
        raise UnitError(f"value in {unit} cannot be compared with a unitless threshold (a score)")
    if source == UNITLESS:
        raise UnitError(f"value with no unit cannot be compared with a threshold in {target}")
    try:
        converted = (value * _quantity(source)).to(_quantity(wanted))
    except Exception as error:  # pint's DimensionalityError, and anything a strange unit raises
        raise UnitError(f"value in {unit} cannot be converted to {target}") from error
    return float(converted.magnitude)
