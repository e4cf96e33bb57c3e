"""NHS numbers: ten digits, the last a modulus 11 check digit."""

from __future__ import annotations

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
_WEIGHTS = range(10, 1, -1)


def check_digit(first_nine: str) -> int | None:
    """The check digit for nine digits, or None where the rule gives 10 (no valid number)."""
    total = sum(int(digit) * weight for digit, weight in zip(first_nine, _WEIGHTS, strict=True))
    check = (11 - total % 11) % 11
    return None if check == 10 else check


def nhs_number_problem(value: str) -> str | None:
    """None for a valid NHS number, else what is wrong with it."""
    shown = value if len(value) <= 20 else value[:20] + "..."
    if len(value) != 10 or not (value.isascii() and value.isdigit()):
        return f"NHS number {shown!r} is not 10 digits"
    expected = check_digit(value[:9])
    if expected is None:
        return f"NHS number {value} cannot be valid: its first nine digits give check digit 10"
    if expected != int(value[9]):
        return f"NHS number {value} fails the modulus 11 check: check digit should be {expected}"
    return None


def is_nhs_number(value: str) -> bool:
    return nhs_number_problem(value) is None
