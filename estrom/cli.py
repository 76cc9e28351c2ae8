"""The ``estrom`` command: ``up`` runs everything, ``router``/``beater``/``tailor`` run one part.

``estrom up`` starts Crossbar, then the Beater and the Tailor, each as a child
process (so they run on different cores), and supervises them
(:mod:`estrom.supervisor`): one that exits or is killed is reaped and restarted
with back-off, with one line on stderr saying what happened.  Ctrl-C or
SIGTERM stops them in reverse order and takes Crossbar's whole process group
down with them, also while a restart is pending.
"""

from __future__ import annotations

import argparse
import errno
import functools
import os
import socket
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger, LogLevel

from estrom import logs
from estrom import settings as settings_module
from estrom.children import SUPERVISED_ENV, ChildService
from estrom.settings import Settings
from estrom.supervisor import Part, Supervisor

log = Logger(namespace="estrom.cli")  # not __name__: the children run this module as __main__

COMMANDS = {
    "up": "run the router, the Beater and the Tailor (embedded percolator by default)",
    "router": "run only the router (Crossbar) in the foreground",
    "router-key": "print this router node's public key (created on first use), for its peers' --router-peer-keys",
    "beater": "run only the Beater (ingest, percolate, publish)",
    "tailor": "run only the Tailor (HTTP tails)",
}


class PortInUse(SystemExit):
    """A port estrom needs is taken; the message names it and the flag that moves it."""


def check_port_free(host: str, port: int, what: str, flag: str) -> None:
    """Exit with a one-line message if ``host:port`` cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            reason = "already in use" if e.errno == errno.EADDRINUSE else e.strerror
            raise PortInUse(f"estrom: port {port} on {host} ({what}) is {reason}; choose another with {flag}") from None


def check_ingest_protected(command: str, s: Settings) -> None:
    """Refuse to run a Beater that anyone on the network could ingest into (no ingest token, not loopback)."""
    from estrom.auth import GENERATE_HINT, SCOPE_INGEST, is_loopback, token_env

    if command not in ("up", "beater") or is_loopback(s.beater_host) or s.tokens.configured(SCOPE_INGEST):
        return
    where = f"{s.beater_host or 'every interface'}:{s.beater_port}"
    if s.allow_unauthenticated_ingest:
        if os.environ.get(SUPERVISED_ENV):
            return  # the parent has warned already
        print(f"estrom: warning: anyone who reaches {where} may ingest (--allow-unauthenticated-ingest yes)", file=sys.stderr, flush=True)
        return
    raise SystemExit(
        f"estrom: the Beater would listen on {where} (--beater-host) with no ingest token, so anyone who reaches it could "
        f"ingest. Set one: export {token_env(SCOPE_INGEST)}=$({GENERATE_HINT}), or --tokens-file FILE holding "
        f"{{\"ingest\": [\"<token>\"]}}; or listen on 127.0.0.1; or, only behind something that authenticates, "
        f"--allow-unauthenticated-ingest yes"
    )


def prepare_router(cbdir: Path, s: Settings) -> Tuple[Path, Dict[str, str]]:
    """Render the router's configuration into ``cbdir``; return it and the tickets its environment must carry.

    Each ingest token becomes a WAMP-ticket principal of the ``ingest`` role (:mod:`router.config`); with
    ``--router-peers`` the node links to its peers and its key pair is put where Crossbar reads it.
    """
    from estrom.auth import SCOPE_INGEST
    from router import config as crossbar_config

    ingest = crossbar_config.ingest_principals(s.tokens.secrets(SCOPE_INGEST))
    rendered = crossbar_config.render(crossbar_config.load_template(), s.router_host, s.router_port, s.router_path, list(ingest))
    try:
        rendered = crossbar_config.cluster(rendered, s.peers(), s.peer_keys)
    except crossbar_config.ClusterSettingError as e:
        raise SystemExit(f"estrom: {e}") from None
    if s.router_peers:
        crossbar_config.install_node_key(s.node_key_dir, cbdir)
    return crossbar_config.write(rendered, cbdir), {**s.tickets, **ingest}


def ports_of(command: str, s: Settings) -> List[Tuple[str, int, str, str]]:
    """The (host, port, what, flag) that ``command`` will listen on."""
    ports = []
    if command in ("up", "router"):
        ports.append((s.router_host, s.router_port, "router", "--router-url / $ESTROM_ROUTER_URL"))
    if command in ("up", "tailor"):
        ports.append((s.tailor_host, s.tailor_port, "Tailor HTTP", "--tailor-port / $ESTROM_TAILOR_PORT"))
    if command in ("up", "beater"):
        ports.append((s.beater_host, s.beater_port, "Beater HTTP", "--beater-port / $ESTROM_BEATER_PORT"))
    return ports


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="estrom", description="Live, filtered tail of document streams.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        settings_module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of the ``estrom`` console script."""
    args = parse_args(argv)
    s = settings_module.resolve(args)
    for host, port, what, flag in ports_of(args.command, s):
        check_port_free(host, port, what, flag)
    check_ingest_protected(args.command, s)
    if args.command == "router":
        run_router_foreground(s)
        return
    if args.command == "router-key":
        from router import config as crossbar_config

        print(crossbar_config.node_public_key(s.node_key_dir))
        return
    logs.start_logging(args.command, s.log_level, s.log_format)
    from twisted.internet import reactor

    run_services(reactor, s, args.command)


def run_router_foreground(s: Settings) -> None:
    """``estrom router``: become Crossbar, configured from ``.crossbar/``."""
    from router import process

    cbdir = s.data_dir / "crossbar"
    config_path, tickets = prepare_router(cbdir, s)
    print(f"estrom: router on {s.router_url} (realm estrom)", file=sys.stderr, flush=True)
    if s.router_peers:
        from router import config as crossbar_config

        print(f"estrom: this node's key {crossbar_config.node_public_key(cbdir)} (its peers' --router-peer-keys)", file=sys.stderr, flush=True)
    for peer in s.peers():
        print(f"estrom: links to the router node at {peer.url}", file=sys.stderr, flush=True)
    process.exec_foreground(cbdir, config_path, tickets)


def run_services(reactor: Any, s: Settings, command: str) -> None:
    """Start what ``command`` asks for, run the reactor, stop everything on shutdown."""
    stops: List[Callable[[], Awaitable[None]]] = []
    failed: List[str] = []

    async def start() -> None:
        try:
            if command == "up":
                router = await start_router(reactor, s, stops)
                children = await start_children(reactor, s, stops)
                supervise(reactor, [router, *children], stops)
            if command == "beater":
                from beater.app import make_beater

                beater = make_beater(s, reactor)
                await beater.start()
                stops.append(beater.stop)
                logs.announce(log, "start", "estrom: Beater {beater} ingest on {url} ({percolator} percolator)",
                              beater=beater.beater.pipeline.sequencer.beater_id, percolator=s.percolator,
                              url=f"http://{s.beater_host}:{s.beater_port}/api/v0.1/beat/<index>")
            if command == "tailor":
                from tailor.app import make_tailor

                tailor = make_tailor(s, reactor)
                await tailor.start()
                stops.append(tailor.stop)
                logs.announce(log, "start", "estrom: Tailor on {url}", url=f"http://{s.tailor_host}:{s.tailor_port}/api/v0.1/docs?i=<index>&q=<query>")
            if not os.environ.get(SUPERVISED_ENV):
                logs.announce(log, "ready", "estrom: ready (data in {data_dir}; Ctrl-C stops)", data_dir=str(s.data_dir))
        except Exception as e:
            failed.append(str(e))
            logs.event(log, LogLevel.error, "start_failed", "estrom: {error}", error=str(e))
            reactor.stop()

    async def stop_all() -> None:
        if stops:
            logs.announce(log, "stop", "estrom: stopping")
        for stop in reversed(stops):
            try:
                await stop()
            except Exception:
                log.failure("stopping failed")

    reactor.addSystemEventTrigger("before", "shutdown", lambda: ensureDeferred(stop_all()))
    reactor.callWhenRunning(lambda: ensureDeferred(start()))
    reactor.run()
    if failed:
        raise SystemExit(1)


async def start_children(reactor: Any, s: Settings, stops: List[Callable[[], Awaitable[None]]]) -> List[ChildService]:
    """Start the Beater and the Tailor as child processes; wait until both are healthy."""
    children = [ChildService("beater", s), ChildService("tailor", s)]
    for child in children:
        child.start()
        stops.append(functools.partial(child.stop, reactor))  # bound now, not to the loop variable
    for child in children:
        await child.wait_healthy(reactor)
    return children


def supervise(reactor: Any, parts: List[Part], stops: List[Callable[[], Awaitable[None]]]) -> Supervisor:
    """Restart any of ``parts`` that ends from now on; the supervisor stops first on shutdown.

    (``stops`` run in reverse: no restart is scheduled or started once the parts are being stopped.)
    """
    supervisor = Supervisor(reactor, parts)
    supervisor.start()
    stops.append(supervisor.stop)
    return supervisor


async def start_router(reactor: Any, s: Settings, stops: List[Callable[[], Awaitable[None]]]) -> Any:
    """Start Crossbar as a child and wait until it listens; return its RouterProcess."""
    from router import process

    cbdir = s.data_dir / "crossbar"
    config_path, tickets = prepare_router(cbdir, s)
    router = process.RouterProcess(cbdir, config_path, tickets, s.data_dir / "router.log", listen=(s.router_host, s.router_port))
    router.start()
    stops.append(lambda: router.stop(reactor))
    await router.wait_ready(reactor)
    logs.announce(log, "start", "estrom: router on {url} (pid {pid}, log {log_path})", url=s.router_url, pid=router.pid, log_path=str(router.log_path))
    return router


if __name__ == "__main__":
    main()
