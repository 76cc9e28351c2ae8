"""The Crossbar configuration grants exactly what the WAMP contract promises."""

from __future__ import annotations

from router import config, contract


def permissions(role: str) -> dict:
    return {(uri, match): allow for r, uri, match, allow in config.role_permissions(config.load_template()) if r == role}


def test_realm_is_the_contracts() -> None:
    """The router serves the realm the services join."""
    assert config.load_template()["workers"][0]["realms"][0]["name"] == contract.REALM


def test_anonymous_may_register_and_subscribe_but_never_publish() -> None:
    """Anonymous clients call the registration RPC and subscribe to docs-for-*, nothing more."""
    anonymous = permissions(contract.ROLE_ANONYMOUS)
    assert anonymous[(contract.PROC_REGISTER, "exact")]["call"] is True
    assert anonymous[(contract.TOPIC_PREFIX, "prefix")]["subscribe"] is True
    assert not any(allow.get("publish") or allow.get("register") for allow in anonymous.values())


def test_only_the_beater_publishes_documents() -> None:
    """Publishing to docs-for-* is the beater role's alone."""
    assert not any(a.get("publish") for a in permissions(contract.ROLE_ANONYMOUS).values())
    assert not allowed(contract.ROLE_TAILOR, contract.topic_for("0123456789abcdef"), "publish")
    assert permissions(contract.ROLE_BEATER)[(contract.TOPIC_PREFIX, "prefix")]["publish"] is True


def test_only_the_tailor_publishes_counts_and_serves_estrom_counts() -> None:
    """The Tailor registers estrom.counts and publishes counts-for-*; anonymous clients call and subscribe."""
    topic = contract.counts_topic_for("0123456789abcdef", "10s", "wiki")
    assert allowed(contract.ROLE_TAILOR, topic, "publish")
    assert allowed(contract.ROLE_TAILOR, contract.PROC_COUNTS, "register")
    assert allowed(contract.ROLE_TAILOR, contract.META_SUBSCRIPTION_LOOKUP, "call")
    assert allowed(contract.ROLE_ANONYMOUS, contract.PROC_COUNTS, "call")
    assert allowed(contract.ROLE_ANONYMOUS, topic, "subscribe")
    assert not allowed(contract.ROLE_ANONYMOUS, topic, "publish")
    assert not allowed(contract.ROLE_BEATER, topic, "publish")


def test_service_tickets_come_from_the_environment() -> None:
    """No ticket is written in the configuration: each is a ${ESTROM_*_TICKET} reference (the only form Crossbar substitutes)."""
    transport = config.load_template()["workers"][0]["transports"][0]
    for listener in (transport["websocket"]["ws"], transport["rawsocket"]):
        principals = listener["auth"]["ticket"]["principals"]
        assert {p: v["ticket"] for p, v in principals.items()} == {
            "beater": "${ESTROM_BEATER_TICKET}",
            "tailor": "${ESTROM_TAILOR_TICKET}",
        }


def test_rawsocket_and_websocket_authenticate_alike() -> None:
    """Services may use either transport; neither gives anyone more than the other."""
    transport = config.load_template()["workers"][0]["transports"][0]
    assert transport["rawsocket"]["auth"] == transport["websocket"]["ws"]["auth"]


def test_render_moves_endpoint_and_path_only() -> None:
    """Rendering changes the listening endpoint and WebSocket path, nothing else."""
    template = config.load_template()
    rendered = config.render(template, "0.0.0.0", 9999, "wamp")
    transport = rendered["workers"][0]["transports"][0]
    assert transport["endpoint"] == {"type": "tcp", "interface": "0.0.0.0", "port": 9999}
    assert "wamp" in transport["websocket"] and "ws" not in transport["websocket"]
    assert rendered["workers"][0]["realms"] == template["workers"][0]["realms"]


def allowed(role: str, uri: str, action: str) -> bool:
    """Whether ``role`` may do ``action`` on ``uri``, resolved as Crossbar does: an exact
    permission first, else the longest matching prefix, else a wildcard (none are used here)."""
    granted = permissions(role)
    if (uri, "exact") in granted:
        return bool(granted[(uri, "exact")].get(action))
    prefixes = [p for (p, match) in granted if match == "prefix" and uri.startswith(p)]
    return bool(prefixes) and bool(granted[(max(prefixes, key=len), "prefix")].get(action))


def test_only_services_may_call_replay() -> None:
    """estrom.replay.<beater> hands out every subscription's recent hits: the tailor and beater roles may call it, anonymous not."""
    procedure = contract.replay_procedure("b1")
    assert allowed(contract.ROLE_TAILOR, procedure, "call")
    assert allowed(contract.ROLE_BEATER, procedure, "register")
    assert not allowed(contract.ROLE_ANONYMOUS, procedure, "call")
    assert allowed(contract.ROLE_ANONYMOUS, contract.PROC_LOOKUP, "call")  # the resolver does grant what is granted


def test_the_tailor_may_follow_registrations_to_find_every_beater() -> None:
    """The Tailor lists registrations and hears of new and gone ones; it may not register anything."""
    for uri in (contract.META_REGISTRATION_LIST, contract.META_REGISTRATION_GET):
        assert allowed(contract.ROLE_TAILOR, uri, "call")
    for uri in (contract.META_REGISTRATION_ON_CREATE, contract.META_REGISTRATION_ON_DELETE):
        assert allowed(contract.ROLE_TAILOR, uri, "subscribe")
    assert not allowed(contract.ROLE_ANONYMOUS, contract.META_REGISTRATION_LIST, "call")


def test_a_replay_procedure_names_its_beater() -> None:
    """estrom.replay.<id> round-trips to <id>; other URIs name no Beater."""
    assert contract.beater_of_replay_procedure(contract.replay_procedure("3f2a9c1d")) == "3f2a9c1d"
    assert contract.beater_of_replay_procedure(contract.PROC_HEALTH) is None
    assert contract.beater_of_replay_procedure(contract.PROC_REPLAY_PREFIX) is None


def test_a_peer_nodes_link_holds_stand_ins_and_nothing_more() -> None:
    """Another router node of a cluster subscribes to docs-for-*/counts-for-* and registers estrom.* for its own
    clients; it never publishes (its node re-publishes what it receives) and never calls."""
    topic, counts = contract.topic_for("0123456789abcdef"), contract.counts_topic_for("0123456789abcdef", "10s")
    assert allowed(contract.ROLE_PEER, topic, "subscribe") and allowed(contract.ROLE_PEER, counts, "subscribe")
    for procedure in (contract.PROC_REGISTER, contract.PROC_LOOKUP, contract.replay_procedure("b1"), contract.PROC_COUNTS):
        assert allowed(contract.ROLE_PEER, procedure, "register")
    granted = permissions(contract.ROLE_PEER).values()
    assert not any(allow.get("publish") or allow.get("call") for allow in granted)
    assert not allowed(contract.ROLE_PEER, contract.META_SUBSCRIPTION_LIST, "call")
    assert contract.ROLE_PEER != "rlink"  # Crossbar hides the registrations of its reserved "rlink" role from the meta API
