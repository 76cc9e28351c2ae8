"""The Tailor's directory of Beaters, fed by the router's registration meta events."""

from __future__ import annotations

from router import contract
from tailor.beaters import BeaterDirectory


def test_a_replay_procedure_makes_its_beater_known() -> None:
    """``estrom.replay.<id>`` registrations name the Beaters; other procedures do not."""
    directory = BeaterDirectory()
    directory.created({"id": 11, "uri": contract.replay_procedure("b2")})
    directory.created({"id": 12, "uri": contract.replay_procedure("b1")})
    directory.created({"id": 13, "uri": contract.PROC_REGISTER})
    assert directory.ids == ["b1", "b2"]


def test_a_deleted_registration_forgets_its_beater() -> None:
    """``on_delete`` carries only the registration id."""
    directory = BeaterDirectory()
    directory.created({"id": 11, "uri": contract.replay_procedure("b1")})
    directory.deleted(11)
    directory.deleted(99)  # unknown ids are ignored
    assert directory.ids == []


def test_forgetting_drops_every_beater() -> None:
    """After the session ends nothing it said holds."""
    directory = BeaterDirectory()
    directory.created({"id": 1, "uri": contract.replay_procedure("b1")})
    directory.created("not a dict")
    directory.forget()
    assert directory.ids == []
