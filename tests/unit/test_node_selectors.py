"""Upstream's NodeSelector semantics, shared by the scheduler's node affinity and local volumes' node affinity."""
import pytest

from shipmate.node_selectors import node_selector_matches, requirement_matches


@pytest.mark.parametrize("operator,values,value,expected", [
    ("In", ["a", "b"], "a", True), ("In", ["a"], None, False),
    ("NotIn", ["a"], "b", True), ("NotIn", ["a"], None, True), ("NotIn", ["a"], "a", False),
    ("Exists", [], "", True), ("Exists", [], None, False), ("DoesNotExist", [], None, True),
    ("Gt", ["3"], "4", True), ("Gt", ["3"], "3", False), ("Lt", ["3"], "2", True),
    ("Gt", ["3"], "x", False), ("Gt", ["3", "4"], "5", False), ("Gt", ["3"], None, False),
    ("Bogus", ["a"], "a", False)])
def test_requirement(operator: str, values: list[str], value: str | None, expected: bool) -> None:
    assert requirement_matches({"key": "k", "operator": operator, "values": values}, value) is expected


def test_terms_are_ored_requirements_anded_and_an_empty_term_selects_nothing() -> None:
    zone_a = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]},
                                   {"key": "disk", "operator": "Exists"}]}
    named = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}
    selector = {"nodeSelectorTerms": [zone_a, named]}
    assert node_selector_matches(selector, {"zone": "a", "disk": "ssd"}, "n1")
    assert not node_selector_matches(selector, {"zone": "a"}, "n1")
    assert node_selector_matches(selector, {}, "n2")
    assert not node_selector_matches({"nodeSelectorTerms": [{}]}, {"zone": "a"}, "n1")
    assert not node_selector_matches(
        {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.uid", "operator": "Exists"}]}]}, {}, "n1")
