import pytest

from shipmate.selectors import (Operator, SelectorError, label_selector_from_dict, parse_field_selector,
                                parse_label_selector)

LABELS = {"app": "web", "tier": "front", "version": "3"}


@pytest.mark.parametrize("selector,matches", [
    ("", True), ("app=web", True), ("app==web", True), ("app!=web", False), ("app=db", False),
    ("app in (web, db)", True), ("app notin (web)", False), ("tier", True), ("!tier", False), ("missing", False),
    ("!missing", True), ("missing!=x", True), ("app=web,tier=front", True), ("app=web,tier=back", False),
    ("version>2", True), ("version<3", False), ("app in (db),tier", False), ("env notin (prod)", True),
])
def test_label_selector_matching(selector, matches):
    assert parse_label_selector(selector).matches(LABELS) is matches


@pytest.mark.parametrize("bad", ["app in (web", "app=we b", "a=b=c", "version>x", "=x", "app,,tier"])
def test_label_selector_rejects(bad):
    with pytest.raises(SelectorError):
        parse_label_selector(bad)


def test_label_selector_from_dict():
    selector = label_selector_from_dict({"matchLabels": {"app": "web"},
                                         "matchExpressions": [{"key": "tier", "operator": "In",
                                                               "values": ["front", "back"]}]})
    assert selector.matches(LABELS)
    assert not selector.matches({"app": "web"})
    with pytest.raises(SelectorError):
        label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "Bogus"}]})


def test_field_selector():
    fields = {"metadata.name": "web", "spec.nodeName": "node-a", "status.phase": "Running"}
    assert parse_field_selector("spec.nodeName=node-a").matches(fields)
    assert parse_field_selector("spec.nodeName==node-a,status.phase!=Failed").matches(fields)
    assert not parse_field_selector("spec.nodeName=node-b").matches(fields)
    assert parse_field_selector("spec.nodeName=").matches({"spec.nodeName": ""})
    selector = parse_field_selector("spec.nodeName=node-a,status.phase!=Succeeded")
    assert selector.required_value("spec.nodeName") == "node-a"
    assert selector.requirements[1].operator == Operator.NOT_EQUALS
    assert parse_field_selector(r"metadata.name=a\,b").requirements[0].value == "a,b"
    with pytest.raises(SelectorError):
        parse_field_selector("spec.nodeName")
