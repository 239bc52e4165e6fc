"""Quantity parsing: exact values, the unit conversions the scheduler relies on."""

from __future__ import annotations

from decimal import Decimal

import pytest

from arktos.api.quantity import (
    QuantityError,
    format_bytes,
    format_millis,
    int_value,
    is_valid_quantity,
    milli_value,
    parse_quantity,
    resource_amount,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2", Decimal(2)),
        ("100m", Decimal("0.1")),
        ("1Gi", Decimal(2**30)),
        ("500Mi", Decimal(500 * 2**20)),
        ("1Ki", Decimal(1024)),
        ("1k", Decimal(1000)),
        ("1M", Decimal(10**6)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("2e-2", Decimal("0.02")),
        ("1E", Decimal(10**18)),  # exa, not an exponent
        ("1Ei", Decimal(2**60)),
        ("1.5", Decimal("1.5")),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        ("+3", Decimal(3)),
        ("-1", Decimal(-1)),
        ("250u", Decimal("0.00025")),
        ("7n", Decimal("7e-9")),
        ("0", Decimal(0)),
    ],
)
def test_parse(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text",
    ["", ".", "abc", "1Kb", "1e", "1 Gi", " 1", "1.2.3", "--1", "e3", "Gi", "1ki", "1GiB", "1e1.5", "0x10", "1e99999"],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)
    assert not is_valid_quantity(text)


def test_json_numbers() -> None:
    assert parse_quantity(2) == 2
    assert parse_quantity(0.5) == Decimal("0.5")
    assert milli_value(0.1) == 100  # exact: 0.1 is read as its decimal text, not the binary float
    for bad in (True, None, float("nan"), float("inf"), [1]):
        with pytest.raises(QuantityError):
            parse_quantity(bad)  # type: ignore[arg-type]


def test_milli_and_int_values_round_up() -> None:
    assert milli_value("100m") == 100
    assert milli_value("1") == 1000
    assert milli_value("1.5") == 1500
    assert milli_value("0.1m") == 1  # a sub-milli request still counts
    assert milli_value("1n") == 1
    assert int_value("500m") == 1
    assert int_value("1Ki") == 1024
    assert int_value("1.5Gi") == 3 * 2**29
    assert int_value("1e3") == 1000
    assert int_value("-1.5") == -1  # ceiling, as Kubernetes' Value()


def test_exact_addition() -> None:
    # The reason for Decimal: floats would make this 0.30000000000000004.
    assert parse_quantity("0.1") + parse_quantity("0.2") == parse_quantity("300m")
    assert milli_value("0.1") + milli_value("0.2") == milli_value("300m")


def test_resource_amount_units() -> None:
    assert resource_amount("cpu", "250m") == 250
    assert resource_amount("memory", "128Mi") == 128 * 2**20
    assert resource_amount("nvidia.com/gpu", "2") == 2
    assert resource_amount("ephemeral-storage", "1G") == 10**9


def test_format() -> None:
    assert format_millis(2000) == "2"
    assert format_millis(1500) == "1500m"
    assert format_bytes(2**30) == "1Gi"
    assert format_bytes(1536 * 2**20) == "1536Mi"
    assert format_bytes(1000) == "1000"
    assert format_bytes(0) == "0"
