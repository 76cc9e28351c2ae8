"""EmbeddedPercolator: the Percolator protocol over sqlite and the in-memory query index."""

import gc
from pathlib import Path

import pytest
from twisted.python.failure import Failure

from beater.errors import UnsupportedQuery
from beater.percolator.embedded import EmbeddedPercolator
from beater.registration import make_registration
from tests.unit.deferreds import result


@pytest.fixture
def percolator(tmp_path: Path) -> EmbeddedPercolator:
    p = EmbeddedPercolator(tmp_path / "deep" / "dir" / "registrations.sqlite3")
    result(p.start())
    yield p
    result(p.stop())


def test_start_creates_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "r.sqlite3"
    p = EmbeddedPercolator(path)
    result(p.start())
    result(p.stop())
    assert path.exists()


def test_register_is_new_then_idempotent(percolator: EmbeddedPercolator) -> None:
    registration = make_registration("rc", "title:foo")
    assert result(percolator.register(registration)) is True
    assert result(percolator.register(registration)) is False


def test_percolate_answers_ids_per_document(percolator: EmbeddedPercolator) -> None:
    foo = make_registration("rc", "title:foo")
    bar = make_registration("rc", "bar")
    result(percolator.register(foo))
    result(percolator.register(bar))
    answer = result(percolator.percolate("rc", [{"title": "foo"}, {"comment": "bar foo"}, {"title": "x"}]))
    assert answer == [[foo.id], [bar.id], []]


def test_percolate_of_no_documents_is_empty(percolator: EmbeddedPercolator) -> None:
    assert result(percolator.percolate("rc", [])) == []


def test_lookup_returns_the_registration_or_none(percolator: EmbeddedPercolator) -> None:
    registration = make_registration("rc", "user:alice")
    result(percolator.register(registration))
    assert result(percolator.lookup(registration.id)) == registration
    assert result(percolator.lookup("nope")) is None


def test_unsupported_query_fails_the_deferred(percolator: EmbeddedPercolator) -> None:
    registration = make_registration("rc", "title:/a&b/")
    with pytest.raises(UnsupportedQuery):
        result(percolator.register(registration))
    assert result(percolator.lookup(registration.id)) is None


def test_registrations_survive_restart(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    registration = make_registration("rc", "title:foo")
    first = EmbeddedPercolator(path)
    result(first.start())
    result(first.register(registration))
    result(first.stop())
    second = EmbeddedPercolator(path)
    result(second.start())
    assert result(second.percolate("rc", [{"title": "foo"}])) == [[registration.id]]
    assert result(second.register(registration)) is False
    result(second.stop())


def test_loaded_registrations_are_kept_out_of_the_collectors_full_passes(tmp_path: Path) -> None:
    """A full pass over 100,000 loaded queries stalled matching for 1-3.5 s; frozen, they are not walked."""
    path = tmp_path / "r.sqlite3"
    first = EmbeddedPercolator(path)
    result(first.start())
    result(first.register(make_registration("rc", "title:foo")))
    result(first.stop())
    gc.unfreeze()
    second = EmbeddedPercolator(path)
    result(second.start())
    query = second.index._state("rc").queries[0]
    assert gc.get_freeze_count() > 0 and not any(query is o for o in gc.get_objects())
    result(second.stop())


def test_field_model_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    first = EmbeddedPercolator(path)
    result(first.start())
    result(first.percolate("rc", [{"n": 5}]))  # n becomes a long
    result(first.stop())
    second = EmbeddedPercolator(path)
    result(second.start())
    registration = make_registration("rc", "n:5")
    result(second.register(registration))
    assert result(second.percolate("rc", [{"n": "5"}])) == [[registration.id]]  # "5" coerced into the long field
    result(second.stop())


def test_a_corrupt_store_is_reported_by_name_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "registrations.sqlite3"
    garbage = b"not a database, just bytes " * 200
    path.write_bytes(garbage)
    failures: list[Failure] = []
    EmbeddedPercolator(path).start().addErrback(failures.append)
    assert failures and str(path) in str(failures[0].value) and "untouched" in str(failures[0].value)
    assert path.read_bytes() == garbage


def test_registrations_made_live_are_frozen_out_of_the_collector_every_so_many(
    percolator: EmbeddedPercolator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import beater.percolator.embedded as embedded

    frozen = []
    monkeypatch.setattr(embedded, "FREEZE_EVERY", 3)
    monkeypatch.setattr(embedded.gc, "freeze", lambda: frozen.append(len(frozen)))
    for n in range(7):
        result(percolator.register(make_registration("rc", f"title:word{n}")))
    assert len(frozen) == 2  # after the 3rd and the 6th
