from fractions import Fraction

import pytest

from shipmate.quantity import QuantityError, QuantityFormat, canonical, parse_quantity


@pytest.mark.parametrize("text,value", [
    ("500m", Fraction(1, 2)), ("1", 1), ("5Gi", 5 * 2**30), ("1e3", 1000), ("128974848", 128974848),
    ("129M", 129_000_000), ("123Mi", 123 * 2**20), ("0.5", Fraction(1, 2)), ("-1k", -1000), ("1.5Gi", 3 * 2**29),
    ("100n", Fraction(1, 10**7)), ("2E", 2 * 10**18), (".5", Fraction(1, 2)), ("1E-3", Fraction(1, 1000)),
])
def test_parse_exact(text, value):
    assert parse_quantity(text).value == value


@pytest.mark.parametrize("text,expected", [
    ("1000m", "1"), ("500m", "500m"), ("1.5Gi", "1536Mi"), ("1024Ki", "1Mi"), ("0.5", "500m"), ("1000", "1k"),
    ("129M", "129M"), ("128974848", "128974848"), ("1e3", "1e3"), ("1Gi", "1Gi"), ("512", "512"),
    ("0.5Gi", "512Mi"), ("1.5", "1500m"), ("0", "0"), ("0.1m", "100u"), ("100Ki", "100Ki"),
])
def test_canonical(text, expected):
    assert canonical(text) == expected


def test_rounds_up_to_nano():
    assert parse_quantity("0.0000000001").value == Fraction(1, 10**9)


@pytest.mark.parametrize("bad", ["", "abc", "1.2.3", "5GiB", "1Kk", "--1", "1 Gi"])
def test_rejects_malformed(bad):
    with pytest.raises(QuantityError):
        parse_quantity(bad)


def test_arithmetic_and_integer_views():
    cpu = parse_quantity("250m") + parse_quantity("1")
    assert cpu.milli_value() == 1250 and cpu.int_value() == 2
    assert parse_quantity("1Gi") > parse_quantity("1G")
    assert parse_quantity("1Gi").format == QuantityFormat.BINARY_SI
    assert parse_quantity(3).value == 3
