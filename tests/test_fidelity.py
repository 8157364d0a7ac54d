"""A value that conforms to its schema leaves the tap as it came, whatever its neighbours.

Property-based (hypothesis): records from the sandbox's generator, changed at random paths into
hostile values, sanitized on a page with other hostile records and on a page alone.
"""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tap_botpenguin.records.sanitize import RecordSanitizer
from tap_botpenguin.sandbox import data_epoch
from tap_botpenguin.sandbox.data import make_record
from tap_botpenguin.streams.schema import CHAT_SCHEMA

from .helpers import examples, mutation, set_at, strings_in

SANITIZER = RecordSanitizer(CHAT_SCHEMA.api_schema())

#: Attribute values: free user input, any JSON scalar (string | number | boolean | null).
#: NUL characters are left out: no warehouse stores them, so the tap removes them by policy.
attribute_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=20),
)


@st.composite
def records(draw: st.DrawFn, *, hostile: bool) -> dict[str, Any]:
    """A documented record (with generated attribute values), changed at random if hostile."""
    record = make_record(
        random.Random(draw(st.integers(0, 10**6))), draw(st.integers(1, 500)), data_epoch()
    )
    details = record["profile"].get("userDetails")
    if details is not None:
        details["attributes"] = [
            {"key": f"field_{n}", "value": value}
            for n, value in enumerate(draw(st.lists(attribute_values, max_size=4)))
        ]
    if hostile:
        for path, value in draw(st.lists(mutation, min_size=1, max_size=4)):
            set_at(record, path, value)
    return record


def _sanitized(page: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sanitize a copy of `page` as the stream does (strings scrubbed if the body had NULs)."""
    copied = copy.deepcopy(page)
    scrub = any("\x00" in text for text in strings_in(copied))
    SANITIZER.sanitize_page(copied, scrub_strings=scrub)
    return copied


@settings(max_examples=examples(300), deadline=None)
@given(
    record=st.one_of(records(hostile=False), records(hostile=True)),
    neighbours=st.lists(records(hostile=True), min_size=1, max_size=5),
    position=st.integers(0, 5),
)
def test_a_record_is_sanitized_the_same_among_hostile_neighbours_as_alone(
    record: dict[str, Any], neighbours: list[dict[str, Any]], position: int
) -> None:
    page = [*neighbours]
    page.insert(min(position, len(page)), record)

    among = _sanitized(page)[min(position, len(neighbours))]

    assert among == _sanitized([record])[0]


@settings(max_examples=examples(300), deadline=None)
@given(
    record=records(hostile=False),
    neighbours=st.lists(records(hostile=True), max_size=5),
)
def test_a_conforming_record_comes_out_equal_to_itself(
    record: dict[str, Any], neighbours: list[dict[str, Any]]
) -> None:
    out = _sanitized([record, *neighbours])[0]

    assert out == record
    attributes = ((record["profile"].get("userDetails") or {}).get("attributes")) or []
    kept = ((out["profile"].get("userDetails") or {}).get("attributes")) or []
    # Union types keep their JSON type: 0 stays 0, true stays true.
    assert [type(a["value"]) for a in kept] == [type(a["value"]) for a in attributes]


def test_attribute_values_keep_their_type_on_a_page_that_needs_repair() -> None:
    """The reported case: one record's `websiteVisits` as text made every attribute a string."""
    page = [make_record(random.Random(n), n, data_epoch()) for n in range(1, 11)]
    for record in page:
        details = record["profile"].get("userDetails")
        if details is not None:
            details["attributes"] = [
                {"key": "score", "value": 0},
                {"key": "vip", "value": True},
                {"key": "ratio", "value": 0.5},
                {"key": "plan", "value": "Gold"},
            ]
    page[0]["websiteVisits"] = "3"

    out = _sanitized(page)

    assert out[0]["websiteVisits"] == 3
    values = [
        attribute["value"]
        for record in out
        for attribute in ((record["profile"].get("userDetails") or {}).get("attributes") or [])
    ]
    assert values
    assert values == [v for _ in range(len(values) // 4) for v in (0, True, 0.5, "Gold")]
    assert [type(v) for v in values[:4]] == [int, bool, float, str]
