"""modgraph.plaindata: the one walk that finds the first value a format cannot hold (spec files, run folders and
checkpoint extras each give it their Policy)."""

import math
import sys
from pathlib import Path

import pytest

from modgraph.plaindata import INDEX, KEY, VALUE, Fault, Policy, first_fault

SCALAR = Policy(leaf=lambda v: v is None or isinstance(v, (bool, int, float, str)))
STR_KEYS = Policy(leaf=SCALAR.leaf, key=lambda k: isinstance(k, str))


def _nested(levels: int):
    value = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize("value", [
    None, 1, 0.5, "s", True, [], {}, (),
    {"a": [1, 2.5, {"b": (None, "x")}], "c": {"d": []}},
    float("nan"),  # NaN is held unless the policy asks for finite numbers
])
def test_plain_data_passes(value):
    assert first_fault(value, STR_KEYS) is None


def test_a_value_of_another_type_is_found_with_its_path():
    bad = object()
    fault = first_fault({"a": [1, 2, bad], "b": Path("later")}, SCALAR)
    assert fault == Fault("type", ((VALUE, "a"), (INDEX, 2)), bad)
    assert fault.where("config") == "config['a'][2]"
    assert fault.where("a.yaml", dotted=True) == "a.yaml.a[2]"


def test_the_first_fault_in_the_containers_order_is_the_one_found():
    fault = first_fault([{"x": 1}, {"y": Path("a"), "z": {1j}}, Path("b")], SCALAR)
    assert fault.kind == "type" and fault.path == ((INDEX, 1), (VALUE, "y")) and fault.value == Path("a")


def test_a_refused_key_is_found_at_its_mapping():
    fault = first_fault({"a": {"ok": 1, 2: 3}}, STR_KEYS)
    assert (fault.kind, fault.path, fault.value) == ("key", ((VALUE, "a"),), 2)
    assert fault.where("spec", dotted=True) == "spec.a"
    assert first_fault({"a": {2: 3}}, SCALAR) is None  # the default: keys are walked as values, 2 is a leaf


def test_keys_are_walked_as_values_when_the_policy_has_no_key_test():
    bad = object()
    fault = first_fault({"ok": 1, (1, bad): 2}, SCALAR)
    assert fault.path == ((KEY, (1, bad)), (INDEX, 1)) and fault.value is bad
    assert fault.where("extra") == f"extra key {(1, bad)!r}[1]"


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_found_when_the_policy_wants_finite_ones(number):
    finite = Policy(leaf=SCALAR.leaf, finite=True)
    fault = first_fault({"lr": [0.1, number]}, finite)
    assert (fault.kind, fault.where("a.json", dotted=True)) == ("nonfinite", "a.json.lr[1]")
    assert first_fault({"lr": [0.1, number]}, SCALAR) is None


def test_a_value_inside_itself_is_named_where_it_appears_again():
    loop: list = [1]
    loop.append(loop)
    fault = first_fault({"a": loop}, SCALAR)
    assert (fault.kind, fault.path, fault.value) == ("loop", ((VALUE, "a"), (INDEX, 1)), loop)
    a: dict = {}
    b = {"a": a}
    a["b"] = b  # two dicts inside each other
    assert first_fault([a], SCALAR).where("x") == "x[0]['b']['a']"


def test_a_loop_is_not_walked_again_when_the_format_keeps_loops():
    loop: list = []
    loop.append(loop)
    keeps = Policy(leaf=SCALAR.leaf, loops=True)
    assert first_fault({"loop": loop}, keeps) is None
    fault = first_fault({"loop": loop, "p": Path("x")}, keeps)  # a fault after the loop is still found
    assert fault.kind == "type" and fault.where("extra") == "extra['p']"


def test_a_shared_part_is_not_a_loop():
    shared = [1, {"k": 2}]
    assert first_fault({"a": shared, "b": shared, "c": [shared, shared]}, SCALAR) is None
    fault = first_fault({"a": shared, "b": shared, "c": Path("x")}, SCALAR)  # the fault itself, not "b"
    assert fault.kind == "type" and fault.where("config") == "config['c']"


def test_max_depth_counts_containers_one_inside_the_other():
    limited = Policy(leaf=SCALAR.leaf, max_depth=5)
    assert first_fault(_nested(5), limited) is None
    fault = first_fault({"a": _nested(5)}, limited)
    assert (fault.kind, fault.where("v")) == ("depth", "v['a'][0][0][0][0]")


def test_a_shared_part_counts_where_it_appears_deepest():
    """A part walked once at a shallow place is still too deep where it appears again, deeper (a YAML alias)."""
    limited = Policy(leaf=SCALAR.leaf, max_depth=5)
    part = _nested(3)
    assert first_fault([part, [part]], limited) is None  # 4 deep at most
    fault = first_fault([part, [[[part]]]], limited)  # 3 + 3 levels
    assert (fault.kind, fault.path, fault.value) == ("depth", ((INDEX, 1), (INDEX, 0), (INDEX, 0), (INDEX, 0)), part)


def test_max_items_counts_shared_parts_each_time_they_appear():
    assert first_fault([1] * 9, Policy(leaf=SCALAR.leaf, max_items=10)) is None  # 9 scalars and the list
    fault = first_fault([1] * 10, Policy(leaf=SCALAR.leaf, max_items=10))
    assert (fault.kind, fault.path, fault.size) == ("size", (), 11)
    shared = [1, 2, 3]
    fault = first_fault([shared, shared], Policy(leaf=SCALAR.leaf, max_items=8))
    assert fault.kind == "size" and fault.size == 9


def test_an_alias_bomb_is_measured_without_expanding_it():
    """Twelve levels of ten references each: 10**12 items expanded; each distinct part is walked once."""
    part: list = [1] * 10
    for _ in range(11):
        part = [part] * 10
    fault = first_fault(part, Policy(leaf=SCALAR.leaf, max_items=10**6))
    assert fault.kind == "size" and fault.size == sum(10**i for i in range(13))


def test_data_nested_deeper_than_the_recursion_limit_is_walked():
    depth = sys.getrecursionlimit() * 5
    assert first_fault(_nested(depth), SCALAR) is None
    deep = _nested(depth)
    deep.append(Path("x"))  # the outermost list: found after walking the whole depth
    fault = first_fault(deep, SCALAR)
    assert fault.kind == "type" and fault.path == ((INDEX, 1),)
    fault = first_fault(_nested(depth), Policy(leaf=SCALAR.leaf, max_depth=64))
    assert fault.kind == "depth" and len(fault.path) == 64


def test_the_policy_decides_what_is_a_container():
    """Only what ``sequence`` and ``mapping`` accept is walked; anything else is a leaf or not."""
    exact = Policy(leaf=SCALAR.leaf, sequence=lambda v: type(v) is list, mapping=lambda v: type(v) is dict)
    fault = first_fault([(1, 2)], exact)
    assert (fault.kind, fault.path, fault.value) == ("type", ((INDEX, 0),), (1, 2))
    assert first_fault([(1, 2)], SCALAR) is None


def test_the_value_is_left_as_it_was():
    value = {"a": [1, (2, 3)], "b": {"c": None}}
    before = repr(value)
    first_fault(value, STR_KEYS)
    assert repr(value) == before
