"""A router node of a cluster: its peers, their keys, and the Crossbar configuration rendered for them."""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path
from typing import Any, Dict, List

import pytest

from estrom import settings
from estrom.cli import prepare_router
from router import config, contract

KEY_B = "2ecd87909589f02938bd0d9e3a57489339c17509b13d8044974a7f47ba99f355"
KEY_C = "97474dca6e3d1bccf2ab0dea030bde7799c4cbdb6e6f73304b33bfbf0d6a147f"


def clustered(peers: str = "rs://10.0.0.2:8080,ws://10.0.0.3:8090/wamp", keys: List[str] = [KEY_B, KEY_C]) -> Dict[str, Any]:
    rendered = config.render(config.load_template(), "10.0.0.1", 8080, "ws")
    return config.cluster(rendered, config.parse_peers(peers), keys)


def parse(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    return parser.parse_args(argv)


# --- peers and keys ---------------------------------------------------------------------------------


def test_peers_are_websocket_or_rawsocket_urls() -> None:
    peers = config.parse_peers(" rs://10.0.0.2:8080 , ws://10.0.0.3:8090/wamp,tcp://h:1")
    assert [(p.host, p.port, p.transport) for p in peers] == [
        ("10.0.0.2", 8080, "rawsocket"), ("10.0.0.3", 8090, "websocket"), ("h", 1, "rawsocket")]
    assert config.parse_peers("") == []


@pytest.mark.parametrize("bad", ["http://h:1", "ws://h/ws", "rs://h", "rs://h:1/path", "h:8080", "rs://h:1,rs://h:1"])
def test_a_peer_that_is_not_a_router_url_or_named_twice_is_refused(bad: str) -> None:
    with pytest.raises(config.ClusterSettingError):
        config.parse_peers(bad)


def test_peer_keys_are_hex_or_files_of_keys(tmp_path: Path) -> None:
    listed = tmp_path / "peers.txt"
    listed.write_text(f"# the other nodes\n{KEY_C}  # node C\n\n0x{KEY_B.upper()}\n")
    assert config.parse_peer_keys(f"{KEY_B}, {listed}") == [KEY_B, KEY_C]


def test_a_crossbar_key_pub_file_gives_its_public_key(tmp_path: Path) -> None:
    """What ``estrom router-key`` prints is also in the node's key.pub: either may be handed to a peer."""
    printed = config.node_public_key(tmp_path / "node")
    assert config.parse_peer_keys(str(tmp_path / "node" / "key.pub")) == [printed]
    assert config.node_public_key(tmp_path / "node") == printed  # created once, then read


@pytest.mark.parametrize("bad", ["abc", "/no/such/file", "zz" * 32])
def test_a_peer_key_that_is_neither_a_key_nor_a_file_of_keys_is_refused(bad: str, tmp_path: Path) -> None:
    with pytest.raises(config.ClusterSettingError):
        config.parse_peer_keys(bad)
    junk = tmp_path / "junk"
    junk.write_text("not a key\n")
    with pytest.raises(config.ClusterSettingError):
        config.parse_peer_keys(str(junk))


# --- the rendered configuration -------------------------------------------------------------------


def test_a_single_node_renders_as_before() -> None:
    rendered = config.render(config.load_template(), "127.0.0.1", 8080, "ws")
    assert config.cluster(rendered, [], []) == rendered
    assert "rlinks" not in rendered["workers"][0]["realms"][0]


def test_each_peer_gets_a_link_that_forwards_local_events_and_calls_only() -> None:
    """Forwarding remote events too would deliver every event that crosses twice."""
    links = clustered()["workers"][0]["realms"][0]["rlinks"]
    assert [link["transport"]["url"] for link in links] == ["rs://10.0.0.2:8080", "ws://10.0.0.3:8090/wamp"]
    for link in links:
        assert link["realm"] == contract.REALM
        assert (link["forward_local_events"], link["forward_remote_events"]) == (True, False)
        assert (link["forward_local_invocations"], link["forward_remote_invocations"]) == (True, False)
    assert links[0]["transport"]["serializer"] == "cbor" and links[1]["transport"]["serializers"] == ["cbor"]


def test_crossbar_accepts_every_link() -> None:
    from crossbar.personality import Personality
    from crossbar.worker.rlink import RLinkConfig

    for link in clustered()["workers"][0]["realms"][0]["rlinks"]:
        parsed = RLinkConfig.parse(Personality, dict(link))
        assert parsed.transport["url"] == link["transport"]["url"]


def test_peers_link_in_with_their_node_keys_as_the_peer_role_on_both_listeners() -> None:
    transport = clustered()["workers"][0]["transports"][0]
    for listener in (transport["rawsocket"], transport["websocket"]["ws"]):
        cryptosign = listener["auth"]["cryptosign"]
        assert cryptosign["type"] == "static"
        assert cryptosign["principals"] == {
            "peer": {"realm": contract.REALM, "role": contract.ROLE_PEER, "authorized_keys": [KEY_B, KEY_C]}}
        assert listener["auth"]["ticket"]["principals"]["beater"]["ticket"] == "${ESTROM_BEATER_TICKET}"


def test_publishers_and_callers_are_disclosed_for_the_links_but_meta_calls_are_not() -> None:
    """A link forwards an event or a call in the name of its publisher or caller."""
    for role in clustered()["workers"][0]["realms"][0]["roles"]:
        for permission in role["permissions"]:
            if permission["allow"]["publish"]:
                assert permission["disclose"]["publisher"] is True, (role["name"], permission["uri"])
            if permission["allow"]["call"]:
                expected = not permission["uri"].startswith("wamp.")
                assert permission["disclose"]["caller"] is expected, (role["name"], permission["uri"])
    disclosed = {(r["name"], p["uri"]) for r in clustered()["workers"][0]["realms"][0]["roles"]
                 for p in r["permissions"] if p["disclose"]["publisher"]}
    assert {(contract.ROLE_BEATER, contract.TOPIC_PREFIX), (contract.ROLE_TAILOR, contract.COUNTS_TOPIC_PREFIX)} <= disclosed


def test_the_link_rules_component_starts_with_the_router() -> None:
    """Crossbar starts a router's components before its links: every link follows estrom's forwarding."""
    components = clustered()["workers"][0]["components"]
    assert {"type": "class", "classname": "router.rlinks.LinkRules", "realm": contract.REALM,
            "role": contract.ROLE_ANONYMOUS} in components
    assert any(c["classname"] == "router.nodelay.NoDelay" for c in components)


def test_peers_without_keys_are_refused() -> None:
    with pytest.raises(config.ClusterSettingError, match="--router-peer-keys"):
        clustered(keys=[])


# --- settings and `estrom router` -------------------------------------------------------------------


def test_cluster_settings_come_from_flags_or_the_environment(tmp_path: Path) -> None:
    s = settings.resolve(parse(["--data-dir", str(tmp_path), "--router-peers", "rs://10.0.0.2:8080",
                                "--router-peer-keys", KEY_B]), environ={})
    assert (s.router_peers, s.peer_keys) == ("rs://10.0.0.2:8080", (KEY_B,))
    assert [p.host for p in s.peers()] == ["10.0.0.2"]
    assert s.node_key_dir == tmp_path / "crossbar"
    env = {"ESTROM_ROUTER_PEERS": "ws://10.0.0.3:8080/ws", "ESTROM_ROUTER_PEER_KEYS": KEY_C,
           "ESTROM_ROUTER_NODE_KEY_DIR": str(tmp_path / "keys")}
    s = settings.resolve(parse(["--data-dir", str(tmp_path)]), environ=env)
    assert (s.router_peers, s.peer_keys, s.node_key_dir) == ("ws://10.0.0.3:8080/ws", (KEY_C,), tmp_path / "keys")


def test_a_child_of_estrom_up_gets_the_same_cluster_settings(tmp_path: Path) -> None:
    """``estrom up`` hands every setting to its children as flags: the peer keys, read from files, too."""
    from estrom.children import child_arguments

    listed = tmp_path / "peers.txt"
    listed.write_text(f"{KEY_B}\n{KEY_C}\n")
    s = settings.resolve(parse(["--data-dir", str(tmp_path), "--router-peers", "rs://10.0.0.2:8080",
                                "--router-peer-keys", str(listed)]), environ={})
    child = settings.resolve(parse(child_arguments(s)), environ={})
    assert (child.router_peers, child.peer_keys, child.node_key_dir) == (s.router_peers, (KEY_B, KEY_C), s.node_key_dir)


@pytest.mark.parametrize("flag, value", [("--router-peers", "http://x:1"), ("--router-peer-keys", "nokey")])
def test_a_bad_cluster_setting_stops_estrom_naming_its_flag(flag: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=flag):
        settings.resolve(parse(["--data-dir", str(tmp_path), flag, value]), environ={})


def test_estrom_router_renders_its_links_and_runs_with_the_node_key_it_was_given(tmp_path: Path) -> None:
    keys = tmp_path / "secrets"
    public = config.node_public_key(keys)
    s = settings.resolve(parse(["--data-dir", str(tmp_path / "data"), "--router-url", "ws://10.0.0.1:8080/ws",
                                "--router-peers", "rs://10.0.0.2:8080", "--router-peer-keys", KEY_B,
                                "--router-node-key-dir", str(keys)]), environ={})
    cbdir = tmp_path / "data" / "crossbar"
    path, _ = prepare_router(cbdir, s)
    rendered = json.loads(path.read_text())
    assert rendered["workers"][0]["realms"][0]["rlinks"][0]["transport"]["url"] == "rs://10.0.0.2:8080"
    # Crossbar reads the node key from its node directory only: the given pair is put there.
    assert config.parse_peer_keys(str(cbdir / "key.pub")) == [public]
    assert (cbdir / "key.priv").read_bytes() == (keys / "key.priv").read_bytes()
    assert stat.S_IMODE((cbdir / "key.priv").stat().st_mode) == 0o600
