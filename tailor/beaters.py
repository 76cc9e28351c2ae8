"""Which Beaters serve right now: a resuming tail must ask each for what it missed.

Every Beater registers its own replay procedure, ``estrom.replay.<beater id>``
(``router/contract.py``).  The router's registration meta events say when one
appears (``wamp.registration.on_create`` carries the URI) and goes
(``on_delete`` carries only the registration id), so the directory maps
registration ids to Beater ids; on each join it lists the registrations the
router already has.
"""

from __future__ import annotations

from typing import Any, Dict, List

from router import contract
from router.client import follow_meta


class BeaterDirectory:
    """Beater ids with a replay procedure registered on the router, by registration id."""

    def __init__(self) -> None:
        self._by_registration: Dict[Any, str] = {}

    @property
    def ids(self) -> List[str]:
        """The Beaters serving now, sorted (so replays visit them in a stable order)."""
        return sorted(set(self._by_registration.values()))

    def created(self, details: Any) -> None:
        """A registration appeared (``wamp.registration.on_create`` or ``get``): note it if it is a replay procedure."""
        if not isinstance(details, dict):
            return
        beater = contract.beater_of_replay_procedure(details.get("uri"))
        if beater is not None:
            self._by_registration[details.get("id")] = beater

    def deleted(self, registration_id: Any) -> None:
        """A registration is gone (its Beater left or died)."""
        self._by_registration.pop(registration_id, None)

    def forget(self) -> None:
        """The router session ended: what it said no longer holds."""
        self._by_registration.clear()


async def follow_beaters(session: Any, directory: BeaterDirectory) -> None:
    """Keep ``directory`` in step with the router's registrations (meta events first, then the current list)."""
    directory.forget()
    await follow_meta(session, "registration", directory.created, directory.deleted)
