"""Resource quantities ("100m", "1Gi", "1e3") as exact numbers.

Kubernetes writes resource amounts as strings with SI or binary suffixes, and
clients also send plain JSON numbers.  The scheduler, the node agent, quota and
validation all need to compare and add them exactly: floats would make
"0.1" + "0.2" CPUs differ from "300m", and a pod that exactly fits a node must
fit.  So quantities are parsed into `Decimal` (exact) and converted to integers
in the unit each consumer counts in: milli-units for CPU, whole units (bytes,
pods, devices) for everything else, rounding up as Kubernetes'
`Quantity.MilliValue()` / `Value()` do, so a request is never under-counted.
"""

from __future__ import annotations

import functools
import re
from decimal import ROUND_CEILING, Context, Decimal, localcontext

__all__ = [
    "QUANTITY_REGEX_MESSAGE",
    "QuantityError",
    "format_bytes",
    "format_millis",
    "int_value",
    "is_valid_quantity",
    "milli_value",
    "parse_quantity",
    "resource_amount",
]

# Shown in validation errors, as Kubernetes shows it.
QUANTITY_REGEX_MESSAGE = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_NUMBER = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(.*)", re.S)
_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)")
# Exponents beyond this are no real resource amount; refusing them keeps the
# arithmetic bounded (a hostile "1e999999999" must not eat memory).
_MAX_EXPONENT = 60
# Enough digits that no legal quantity is ever rounded while converting.
_CTX = Context(prec=200, Emax=10_000, Emin=-10_000)


class QuantityError(ValueError):
    """The text is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float | Decimal) -> Decimal:
    """The exact value of a quantity, e.g. "100m" -> Decimal("0.100").

    Accepts what Kubernetes' `resource.ParseQuantity` accepts: an optionally
    signed decimal number ("1", "1.5", ".5", "5.") followed by nothing, a
    decimal SI suffix (n u m k M G T P E), a binary suffix (Ki Mi Gi Ti Pi Ei)
    or a decimal exponent ("1e3", "2E-2").  Note "1E" is an exabyte while
    "1E3" is a thousand.  JSON numbers are accepted too; booleans are not.
    """
    if isinstance(value, bool):
        raise QuantityError(f"invalid quantity {value!r}")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise QuantityError(f"invalid quantity {value!r}")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise QuantityError(f"invalid quantity {value!r}")
        return Decimal(repr(value))
    if not isinstance(value, str):
        raise QuantityError(f"invalid quantity {value!r}")
    return _parse_string(value)


@functools.lru_cache(maxsize=4096)
def _parse_string(value: str) -> Decimal:
    """Parsing is pure and the same few strings ("100m", "64Mi") come back on every pod write,
    in validation, QoS and scheduling alike; Decimals are immutable, so sharing them is safe.
    Invalid strings raise and are not cached."""
    m = _NUMBER.fullmatch(value)
    if m is None:  # pragma: no cover - the pattern matches every string
        raise QuantityError(f"invalid quantity {value!r}")
    sign, whole, frac, suffix = m.group(1), m.group(2), m.group(3), m.group(4)
    if not whole and not frac:
        raise QuantityError(f"invalid quantity {value!r}")
    number = Decimal(f"{sign}{whole or '0'}.{frac or '0'}")
    with localcontext(_CTX):
        if suffix in _BINARY:
            return number * _BINARY[suffix]
        if suffix in _DECIMAL:
            return number * _DECIMAL[suffix]
        e = _EXPONENT.fullmatch(suffix)
        if e is not None:
            exponent = int(e.group(1))
            if abs(exponent) > _MAX_EXPONENT:
                raise QuantityError(f"quantity {value!r} is out of range")
            return number.scaleb(exponent)
    raise QuantityError(f"invalid quantity {value!r}: unknown suffix {suffix!r}")


def is_valid_quantity(value: object) -> bool:
    try:
        parse_quantity(value)  # type: ignore[arg-type]
    except QuantityError:
        return False
    return True


def _ceil(value: Decimal) -> int:
    with localcontext(_CTX):
        return int(value.to_integral_value(rounding=ROUND_CEILING))


def milli_value(value: str | int | float | Decimal) -> int:
    """The quantity in thousandths, rounded up ("100m" -> 100, "0.5" -> 500, "1n" -> 1)."""
    q = parse_quantity(value)
    with localcontext(_CTX):
        return _ceil(q * 1000)


def int_value(value: str | int | float | Decimal) -> int:
    """The quantity in whole units, rounded up ("1Ki" -> 1024, "500m" -> 1)."""
    return _ceil(parse_quantity(value))


def resource_amount(name: str, value: str | int | float | Decimal) -> int:
    """The integer the scheduler and agent count a resource in.

    CPU is counted in millicores; memory, storage, hugepages, pods and
    extended resources in whole units (bytes, devices).
    """
    return milli_value(value) if name == "cpu" else int_value(value)


def format_millis(millis: int) -> str:
    """The canonical text for a millicore count: 1500 -> "1500m", 2000 -> "2"."""
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_bytes(amount: int) -> str:
    """A byte count with the largest binary suffix that divides it exactly."""
    if amount == 0:
        return "0"
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if amount % unit == 0:
            return f"{amount // unit}{suffix}"
    return str(amount)
