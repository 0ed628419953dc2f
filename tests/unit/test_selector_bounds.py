"""Selector parsing is linear: pathological selectors are parsed (or refused) at once."""
from __future__ import annotations

import time

import pytest

from shipmate.selectors import Operator, SelectorError, parse_field_selector, parse_label_selector

PATHOLOGICAL = {
    "blank run in a field term": "a" + " " * 200_000 + "x",
    "blank run before the operator": "a" + " " * 200_000 + "=x",
    "long key": "a" * 200_000 + "!",
    "long dashed key": "a" + "-" * 200_000 + "!",
    "dotted key": "a." * 100_000 + "!",
    "huge in set": "a in (" + ",".join(f"v{i}" for i in range(20_000)) + ")",
    "10k terms": ",".join(f"a{i}=b" for i in range(10_000)),
    "open parens": "(" * 200_000,
    "escapes": "\\\\" * 100_000 + "=x",
}


@pytest.mark.parametrize("text", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
@pytest.mark.parametrize("parse", [parse_label_selector, parse_field_selector])
def test_pathological_selectors_are_parsed_in_linear_time(parse, text):
    started = time.process_time()
    try:
        parse(text)
    except SelectorError:
        pass
    assert time.process_time() - started < 0.5


def test_field_terms_split_at_the_first_unescaped_operator_as_upstream():
    selector = parse_field_selector(r"metadata.name  != a=b,spec.nodeName==n\,1,x\=y=z")
    assert [(r.field, r.operator, r.value) for r in selector.requirements] == [
        ("metadata.name", Operator.NOT_EQUALS, " a=b"), ("spec.nodeName", Operator.EQUALS, "n,1"),
        ("x=y", Operator.EQUALS, "z")]
    for bad in ("a x", "=x", "a!x", " =x"):
        with pytest.raises(SelectorError, match="can't understand"):
            parse_field_selector(bad)
