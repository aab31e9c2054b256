"""A rendered text is kept per template and the values of the names it reads (render is called
for every missed call): what it returns must be what a fresh render gives, whatever came
before it, for every value that prints differently."""
from hypothesis import given, settings, strategies as st

from pbx_textback.core.text import templates as T

TEMPLATES = (
    T.DEFAULT_TEMPLATE,
    T.FOLLOW_UP_TEMPLATE,
    "{{ caller.number }} missed {{ calls_missed }} call(s){% if voicemail_left %}, voicemail{% endif %}",
    "{% set n = calls_missed * 2 %}{{ business.name|upper }} {{ n }} {{ reason_text }} {{ hours }}",
    "{{ business }} {{ line }}",        # whole dicts: their order shows in the text
)


def fresh(source: str, values: dict) -> str:
    return " ".join(T._compile(source).render(**values).split())


names = st.text(st.sampled_from("AbcĆ é1 +-"), max_size=12)
values = st.builds(T.variables, business_name=names, business_phone=names, line_number=names,
                   line_name=names, caller_number=names, caller_name=names,
                   reason=st.sampled_from(("no-answer", "after-hours", "busy")), hours=names,
                   calls_missed=st.integers(0, 5), voicemail_left=st.booleans())


@settings(max_examples=300)
@given(source=st.sampled_from(TEMPLATES), seq=st.lists(values, min_size=1, max_size=4))
def test_a_kept_text_is_the_fresh_render(source, seq):
    for v in seq + seq[:1]:               # the first again: a kept text by then
        assert T.render(source, v) == fresh(source, v)


def test_values_that_print_differently_are_not_confused():
    src = "{{ calls_missed }} {{ business }}"
    base = T.sample_vars()
    outs = [T.render(src, {**base, "calls_missed": x}) for x in (1, True, 1.0, 1, True)]
    assert outs[:3] == ["1 {'name': 'Acme', 'phone': '+15125550100'}",
                        "True {'name': 'Acme', 'phone': '+15125550100'}",
                        "1.0 {'name': 'Acme', 'phone': '+15125550100'}"] and outs[3:] == outs[:2]
    swapped = {**base, "business": {"phone": "+15125550100", "name": "Acme"}}
    assert T.render(src, swapped) == "1 {'phone': '+15125550100', 'name': 'Acme'}"


def test_a_template_with_a_random_choice_is_rendered_each_time():
    src = "{{ ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']|random }}"
    assert T._reads(src) is None
    assert len({T.render(src, T.sample_vars()) for _ in range(200)}) > 1


def test_a_missing_name_is_an_error_every_time():
    src = "{{ nowhere }}"
    for _ in range(2):
        try:
            T.render(src, T.sample_vars())
        except T.TemplateError:
            continue
        raise AssertionError("rendered a template that reads an unknown name")
