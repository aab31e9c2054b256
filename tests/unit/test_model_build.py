"""model.build(cls, values) against cls(**values): the same object, field for field, in the
same order (to_dict and the JSON made from it keep their order), equal and with the same hash;
values that miss a field or name an unknown one get the constructor's own error."""
from dataclasses import fields

import pytest
from hypothesis import given, strategies as hs

from pbx_textback.core.model import CallRecord, Leg, Outcome, build

_value = hs.one_of(hs.none(), hs.booleans(), hs.text(max_size=5), hs.floats(allow_nan=False),
                   hs.tuples(hs.text(max_size=3)))


def _values(cls):
    names = [f.name for f in fields(cls)]
    # any order at the call site: build puts the fields in declaration order
    return hs.permutations(names).flatmap(
        lambda ns: hs.tuples(*[_value for _ in ns]).map(lambda vs: dict(zip(ns, vs))))


@pytest.mark.parametrize("cls", [CallRecord, Leg, Outcome])
@given(data=hs.data())
def test_build_makes_what_the_constructor_makes(cls, data):
    values = data.draw(_values(cls))
    a, b = build(cls, values), cls(**values)
    assert type(a) is cls and a == b and hash(a) == hash(b)
    assert list(a.__dict__.items()) == list(b.__dict__.items())
    with pytest.raises(AttributeError):       # still frozen
        a.__setattr__(fields(cls)[0].name, "x")


@pytest.mark.parametrize("cls", [CallRecord, Leg])
def test_a_missing_or_unknown_field_is_the_constructors_error(cls):
    values = {f.name: "" for f in fields(cls)}
    missing = dict(values)
    missing.pop(fields(cls)[0].name)
    with pytest.raises(TypeError, match="missing"):
        build(cls, missing)
    with pytest.raises(TypeError, match="unexpected keyword"):
        build(cls, {**missing, "bogus": 1})
    with pytest.raises(TypeError, match="unexpected keyword"):
        build(cls, {**values, "bogus": 1})


@pytest.mark.parametrize("cls", [CallRecord, Leg, Outcome])
@given(data=hs.data())
def test_values_in_declaration_order_make_what_the_constructor_makes(cls, data):
    """(the trackers' call sites: build takes them the short way)"""
    names = [f.name for f in fields(cls)]
    values = dict(zip(names, data.draw(hs.tuples(*[_value for _ in names]))))
    a, b = build(cls, values), cls(**values)
    assert type(a) is cls and a == b and hash(a) == hash(b)
    assert list(a.__dict__.items()) == list(b.__dict__.items())
    values[names[0]] = "changed"            # the caller's dict is not the object's
    assert getattr(a, names[0]) == getattr(b, names[0])
    with pytest.raises(AttributeError):
        a.__setattr__(names[0], "x")


def test_the_trackers_name_the_fields_in_declaration_order(monkeypatch):
    """So their records and legs take build's short way (the premise of its speed; either way
    gives the same object)."""
    from pathlib import Path
    from pbx_textback.core.pbx import asterisk, freeswitch, freeswitch_record
    fix = Path(__file__).resolve().parents[1] / "fixtures"
    asked = []

    def spy(cls, values):
        asked.append((cls, tuple(values)))
        return build(cls, values)
    monkeypatch.setattr(asterisk, "build", spy)
    monkeypatch.setattr(freeswitch_record, "build", spy)
    for p in sorted((fix / "asterisk").glob("*.ami")):
        asterisk.records_from_stream(p.read_bytes())
    for p in sorted((fix / "freeswitch").glob("*.esl")):
        freeswitch.records_from_stream(p.read_bytes())
    assert {cls for cls, _ in asked} == {CallRecord, Leg} and len(asked) > 40
    for cls, names in asked:
        assert names == tuple(f.name for f in fields(cls)), cls
