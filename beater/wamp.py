"""The Beater on the router: its RPCs and its publisher.

Procedures are registered on every join (autobahn's Component redoes
``on_join`` handlers after a reconnect).  Caller mistakes become
``ApplicationError`` with an ``estrom.error.*`` URI and the same details the
HTTP API gives.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, List

from autobahn.twisted.component import Component
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions

from beater.errors import BackendUnavailable, EstromError
from beater.hits import Hit
from beater.service import Beater
from router import contract
from router.client import SessionHolder


def _as_wamp_errors(fn: Callable[..., Awaitable[Dict[str, Any]]]) -> Callable[..., Awaitable[Dict[str, Any]]]:
    async def wrapper(*args: Any, **kwargs: Any) -> Dict[str, Any]:
        try:
            return await fn(*args, **kwargs)
        except EstromError as e:
            raise ApplicationError(e.uri, e.message, **{k: v for k, v in e.to_json().items() if k != "error"})
        except TypeError as e:
            raise ApplicationError(contract.ERROR_INVALID_ARGUMENT, str(e))

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def attach(component: Component, beater: Beater, holder: SessionHolder) -> None:
    """Register the Beater's procedures on every join of ``component`` and track its session."""
    holder.attach(component)

    @component.on_join
    async def _register(session: Any, details: Any) -> None:
        options = RegisterOptions(invoke="roundrobin")
        await session.register(_as_wamp_errors(beater.register), contract.PROC_REGISTER, options=options)
        await session.register(_as_wamp_errors(beater.lookup), contract.PROC_LOOKUP, options=options)
        await session.register(_as_wamp_errors(beater.ingest_documents), contract.PROC_INGEST, options=options)


def make_publisher(holder: SessionHolder) -> Callable[[str, List[Hit]], Awaitable[None]]:
    """A pipeline publisher: one event per subscription per batch, the hits as its one argument."""

    async def publish(subscription_id: str, hits: List[Hit]) -> None:
        session = holder.session
        if session is None or not session.is_attached():
            raise BackendUnavailable("the router is not reachable")
        session.publish(contract.topic_for(subscription_id), hits)

    return publish
