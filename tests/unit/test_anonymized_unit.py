"""The pure parts of anonymized grants: per-grant pseudonyms, the k guarantee, identifier
detection."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from idrs.crypto import Keyring
from idrs.grants.anonymized import (
    LEVELS,
    PopRow,
    choose_table,
    generalize,
    identifier_fields,
)


def test_pseudonyms_are_per_grant_and_key_version_and_not_the_audit_logs(tmp_path):
    ring = Keyring.create(tmp_path / "a")
    other = Keyring.create(tmp_path / "b")
    p = ring.record_pseudonym(7, 1, 42)
    assert p.startswith("an_")
    assert ring.record_of_pseudonym(7, 1, p) == 42
    assert p != ring.record_pseudonym(8, 1, 42)  # another grant
    assert p != ring.record_pseudonym(7, 2, 42)  # another key version
    assert p != other.record_pseudonym(7, 1, 42)  # another master key
    for grant, version in ((8, 1), (7, 2)):
        assert ring.record_of_pseudonym(grant, version, p) is None
    assert other.record_of_pseudonym(7, 1, p) is None
    assert ring.record_of_pseudonym(7, 1, p[:-1] + ("a" if p[-1] != "a" else "b")) is None
    assert ring.record_of_pseudonym(7, 1, "tp_" + p[3:]) is None
    assert ring.record_of_pseudonym(7, 1, "an_!!") is None
    assert ring.grant_record_key(7, 1) not in (ring.pseudonym_key, ring.index_key)
    assert (tmp_path / "a" / "anon.key").stat().st_mode & 0o077 == 0


def test_a_home_made_before_anonymized_grants_gets_its_master_key(tmp_path):
    Keyring.create(tmp_path / "h")
    (tmp_path / "h" / "anon.key").unlink()
    ring = Keyring.load(tmp_path / "h")
    assert len(ring.anon_key) == 32
    assert Keyring.load(tmp_path / "h").anon_key == ring.anon_key


def test_identifier_fields():
    assert identifier_fields({"tin": "900-12-3456"}) == ["tin"]
    assert identifier_fields({"tins": ["1"]}) == ["tins"]
    assert identifier_fields({"spouse_tin": "x"}) == ["spouse_tin"]
    assert identifier_fields({"line": "ENMOD 900123456"}) == ["line"]
    assert identifier_fields({"a": {"b": ["x 90-1234567 y"]}}) == ["a.b[0]"]
    assert identifier_fields({"name": {"last": "Carter"}}) == ["name"]
    assert identifier_fields({"address": {"street": "12 Elm"}}) == ["address"]
    # not identifiers: bands, years, sizes, pseudonyms, empty fields
    assert (
        identifier_fields(
            {
                "agi_band": "100000-199999",
                "tax_year": "2023",
                "first": "12",
                "limit": "100",
                "pseudonym": "an_abcdefg234567",
                "tin": "",
            }
        )
        == []
    )


ROWS = st.lists(
    st.builds(
        PopRow,
        return_id=st.integers(1, 10**6),
        tax_year=st.sampled_from([2022, 2023]),
        filing_status=st.sampled_from(["S", "MFJ", "HOH", "MFS"]),
        state=st.sampled_from(["OH", "TX", None]),
        zip3=st.sampled_from(["454", "750", None]),
        agi_cents=st.integers(-(10**7), 10**8),
        wages_cents=st.one_of(st.none(), st.integers(0, 10**8)),
        birth_year=st.one_of(st.none(), st.integers(1930, 2010)),
    ),
    max_size=300,
)


@settings(max_examples=60, deadline=None)
@given(rows=ROWS, k=st.integers(2, 20))
def test_every_releasable_record_has_k_others_in_the_population(rows, k):
    t = choose_table(rows, k)
    sizes = Counter(generalize(r, LEVELS[t.level]) for r in rows)
    for i, row in enumerate(rows):
        if t.releasable(i):
            assert sizes[generalize(row, LEVELS[t.level])] >= k + 1
    # the level chosen is the finest within the suppression limit (or the coarsest)
    assert t.level == len(LEVELS) - 1 or t.suppressed_share <= 0.05


def test_a_repeated_query_parameter_counts_with_every_value():
    assert identifier_fields({"x": ["1", "900-12-3456"]}) == ["x[1]"]


def test_account_research_skips_the_route_check_its_service_makes(monkeypatch) -> None:
    """The research service refuses an anonymized principal itself; the app-wide dependency
    must not look the session up a second time on that route (it did: it compared the route's
    path without the /api/v1 prefix, and every research call paid a second lookup)."""
    import pytest
    from starlette.requests import Request
    from tests.aio import run

    from idrs.api import anonymized as api_anonymized
    from idrs.api import research as api_research
    from idrs.grants import anonymized as grants_anonymized

    def looked_up(*_a: object, **_k: object) -> None:
        raise AssertionError("looked the session up again")

    monkeypatch.setattr(grants_anonymized, "anonymized_principal_of_token", looked_up)

    def request(endpoint: object) -> Request:
        return Request({
            "type": "http", "method": "GET", "path": "/api/v1/accounts/900-00-0001/ENMOD",
            "headers": [(b"authorization", b"Bearer t0ken")], "query_string": b"",
            "endpoint": endpoint, "path_params": {"tin": "900-00-0001", "command": "ENMOD"},
        })

    run(lambda: api_anonymized.no_identifiers(request(api_research.account_research)))

    class _State:
        app = object()

    other = request(api_research.names_search)
    other.scope["app"] = type("A", (), {"state": _State()})()
    with pytest.raises(AssertionError, match="looked the session up again"):
        run(lambda: api_anonymized.no_identifiers(other))


def test_a_forms_csrf_token_is_no_identifier_but_a_tin_beside_it_is() -> None:
    """The pages' CSRF token is hex: nine digits in a row are common in it (an analyst's
    form was refused as carrying a TIN about one time in eight). It is not scanned; a TIN in
    any other field still is."""
    from starlette.requests import Request
    from tests.aio import run

    from idrs.api import anonymized as api_anonymized

    def form(body: bytes) -> Request:
        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        return Request({
            "type": "http", "method": "POST", "path": "/analysis/records", "query_string": b"",
            "headers": [(b"content-type", b"application/x-www-form-urlencoded")],
        }, receive)

    token = b"csrf=a123456789bc0de&r_limit=5"
    assert run(lambda: api_anonymized._body_fields(form(token))) == []
    smuggled = b"csrf=a123456789bc0de&r_note=900-12-3456"
    assert run(lambda: api_anonymized._body_fields(form(smuggled))) == ["r_note[0]"]


FILTERS = st.fixed_dictionaries(
    {},
    optional={
        "tax_year": st.sampled_from([2022, 2023]),
        "filing_status": st.sampled_from(["S", "MFJ"]),
        "state": st.sampled_from(["OH", "TX"]),
        "zip3": st.sampled_from(["454", "750"]),
        "agi_band": st.integers(-(10**7), 10**8),
    },
)


@settings(max_examples=60, deadline=None)
@given(rows=ROWS, filters=FILTERS)
def test_the_vectorized_classes_and_filters_are_those_of_generalize(rows, filters):
    """The class sizes counted in Polars (on band codes) and the filter masks are exactly
    those of the reference :func:`generalize` over the released strings, at every level."""
    from idrs.grants.anonymized import Population, _band, _matches, table_at

    pop = Population.of_rows(rows)
    assert list(pop) == rows
    for level, lv in enumerate(LEVELS):
        t = table_at(pop, level, 10)
        keys = [generalize(r, lv) for r in rows]
        sizes = Counter(keys)
        assert [int(x) for x in t.sizes] == [sizes[k] for k in keys]
        assert [t.key(i) for i in range(len(rows))] == keys
        f = dict(filters)
        if "agi_band" in f:
            f["agi_band"] = _band(f["agi_band"], lv.money)
        if not lv.state:
            f.pop("state", None)
        if not lv.zip3:
            f.pop("zip3", None)
        assert [bool(x) for x in pop.matching(f, level)] == [_matches(k, f) for k in keys]
    for i, r in enumerate(rows):
        j = pop.index_of(r.return_id)
        assert j is not None and rows[j].return_id == r.return_id
    assert pop.index_of(10**7) is None


def test_a_record_pseudonym_is_no_identifier_even_with_nine_digits_in_a_row() -> None:
    """Base32 pseudonyms use the digits 2-7; nine of them in a row happen (seen in CI). An
    analyst sending one back is not sending a TIN; the same digits anywhere else still are."""
    from idrs.grants import anonymized

    pseudonym = "an_2a2qi6qhzfm73ca325643255bcdefghijklmn"
    assert anonymized.identifier_fields({"pseudonym": pseudonym}) == []
    assert anonymized.identifier_fields({"note": "x 325643255 y"}) == ["note"]
    assert anonymized.identifier_fields({"pseudonym": pseudonym + " 900-12-3456"}) == [
        "pseudonym"]
