"""How many tails the Tailor keeps open, in total and per client address."""

from __future__ import annotations

from tailor.limits import TailLimits


def test_a_new_client_may_open_a_tail() -> None:
    """Below every limit there is no refusal."""
    assert TailLimits(max_total=10, max_per_client=2).refusal("10.0.0.1") is None


def test_per_client_limit_refuses_the_next_tail_of_that_client() -> None:
    """A client at its limit is refused, naming max_tails_per_client and its value."""
    limits = TailLimits(max_total=10, max_per_client=2)
    limits.opened("10.0.0.1")
    limits.opened("10.0.0.1")
    refusal = limits.refusal("10.0.0.1")
    assert refusal is not None
    assert (refusal.name, refusal.value) == ("max_tails_per_client", 2)
    assert "10.0.0.1" in refusal.message


def test_per_client_limit_does_not_touch_other_clients() -> None:
    """Another address may still open tails while one is at its limit."""
    limits = TailLimits(max_total=10, max_per_client=1)
    limits.opened("10.0.0.1")
    assert limits.refusal("10.0.0.2") is None


def test_total_limit_refuses_every_client() -> None:
    """At the total limit even a new address is refused, naming max_tails."""
    limits = TailLimits(max_total=2, max_per_client=5)
    limits.opened("10.0.0.1")
    limits.opened("10.0.0.2")
    refusal = limits.refusal("10.0.0.3")
    assert refusal is not None
    assert (refusal.name, refusal.value) == ("max_tails", 2)


def test_total_limit_is_checked_before_the_per_client_one() -> None:
    """When both are reached the refusal names the total."""
    limits = TailLimits(max_total=1, max_per_client=1)
    limits.opened("10.0.0.1")
    assert limits.refusal("10.0.0.1").name == "max_tails"  # type: ignore[union-attr]


def test_closing_a_tail_makes_room_for_that_client() -> None:
    """After one of its tails ends, a client at its limit may open another."""
    limits = TailLimits(max_total=10, max_per_client=1)
    limits.opened("10.0.0.1")
    limits.closed("10.0.0.1")
    assert limits.refusal("10.0.0.1") is None


def test_closing_a_tail_makes_room_in_the_total() -> None:
    """After any tail ends, the total has room again."""
    limits = TailLimits(max_total=1, max_per_client=5)
    limits.opened("10.0.0.1")
    limits.closed("10.0.0.1")
    assert limits.refusal("10.0.0.2") is None


def test_total_counts_open_tails() -> None:
    """total is the number of tails opened and not yet closed."""
    limits = TailLimits(max_total=10, max_per_client=10)
    for address in ("a", "a", "b"):
        limits.opened(address)
    limits.closed("a")
    assert limits.total == 2


def test_addresses_with_no_open_tail_are_forgotten() -> None:
    """A client whose last tail closed costs no memory."""
    limits = TailLimits(max_total=10, max_per_client=10)
    limits.opened("a")
    limits.closed("a")
    assert limits._per_client == {}


def test_zero_means_no_limit() -> None:
    """A limit of 0 refuses nothing."""
    limits = TailLimits(max_total=0, max_per_client=0)
    for _ in range(1000):
        limits.opened("a")
    assert limits.refusal("a") is None
