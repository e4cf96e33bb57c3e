"""NHS numbers: ten digits with a modulus 11 check digit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mhs.ssp.nhs_number import check_digit, is_nhs_number, nhs_number_problem


@pytest.mark.parametrize("number", ["9000000009", "9434765919", "4010232137"])
def test_known_valid_numbers(number: str) -> None:
    assert nhs_number_problem(number) is None


@pytest.mark.parametrize(
    ("number", "says"),
    [
        ("9000000008", "check digit should be 9"),
        ("943476591", "is not 10 digits"),
        ("94347659190", "is not 10 digits"),
        ("943476591X", "is not 10 digits"),
        # Full-width digits are digits to str.isdigit, not in an NHS number.
        ("".join(chr(0xFF10 + int(d)) for d in "9434765919"), "is not 10 digits"),
        ("", "is not 10 digits"),
        (" 943476591", "is not 10 digits"),
        ("1000000010", "check digit 10"),
        ("9" * 500, "..."),
    ],
)
def test_invalid_numbers_say_why(number: str, says: str) -> None:
    problem = nhs_number_problem(number)
    assert problem is not None
    assert says in problem
    assert len(problem) < 200


nine_digits = st.text(alphabet="0123456789", min_size=9, max_size=9)


@given(nine_digits)
def test_a_number_with_its_check_digit_is_valid(first_nine: str) -> None:
    check = check_digit(first_nine)
    if check is None:
        assert not any(is_nhs_number(first_nine + str(d)) for d in range(10))
    else:
        assert is_nhs_number(first_nine + str(check))


@given(nine_digits, st.integers(0, 9), st.integers(1, 9))
def test_any_single_digit_change_is_caught(first_nine: str, position: int, shift: int) -> None:
    check = check_digit(first_nine)
    if check is None:
        return
    number = first_nine + str(check)
    digits = list(number)
    digits[position] = str((int(digits[position]) + shift) % 10)
    assert not is_nhs_number("".join(digits))
