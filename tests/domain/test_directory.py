from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mhs.directory import (
    Directory,
    TopologyError,
    generate_topology,
    load_topology,
    parse_topology,
)
from mhs.directory.addresses import LocalAddresses
from mhs.directory.generate import default_topology


@pytest.fixture
def default() -> Directory:
    return load_topology()


def test_packaged_default_is_a_datacentre_and_a_remote_mhs(default: Directory) -> None:
    hosted = [p for p in default.parties if p.hosted]
    remote = [p for p in default.parties if not p.hosted]
    assert len(hosted) >= 20
    assert remote
    assert {p.mhs for p in remote} != {p.mhs for p in hosted}
    assert all(len(p.asid) == 12 and p.asid.isdigit() for p in default.parties)
    # The datacentre's practices have a party key each; the remote MHS shares one.
    practices = [p for p in hosted if p.mhs == "datacentre"]
    assert len({p.party_key for p in practices}) == len(practices)
    assert len({p.party_key for p in remote}) == 1


def test_packaged_default_has_pairs_with_and_without_agreements(default: Directory) -> None:
    hosted = [p for p in default.parties if p.hosted]
    outcomes = {default.has_agreement(a.ods_code, b.ods_code) for a in hosted for b in hosted}
    assert outcomes == {True, False}
    assert default.has_agreement("A80001", "A80002")
    assert not default.has_agreement("A80001", "A80009")


def test_packaged_default_matches_the_generator(default: Directory) -> None:
    # The shipped file is what default_topology() writes; they must not drift apart.
    assert default.topology == Directory(default_topology()).topology


def test_endpoint_templates_follow_the_ports_and_plain_urls_stay(tmp_path: Path) -> None:
    moved = LocalAddresses(
        scheme="https", host="10.0.0.5", inbound_port=9082, remote_inbound_port=9084
    )
    directory = load_topology(None, moved)
    hosted = directory.by_asid("918000000001")
    remote = directory.by_asid("928000000001")
    assert hosted is not None
    assert remote is not None
    assert hosted.endpoint == "https://10.0.0.5:9082/reliablemessaging"
    assert hosted.gpconnect_endpoint == "https://10.0.0.5:8085"
    assert hosted.fqdn == "10.0.0.5"
    assert remote.endpoint == "https://10.0.0.5:9084/reliablemessaging"
    # Without addresses: the default ports on 127.0.0.1.
    assert load_topology().mhs("remote").endpoint == (  # type: ignore[union-attr]
        "http://127.0.0.1:8084/reliablemessaging"
    )
    data = _raw()
    data["mhs"][1]["endpoint"] = "https://mhs.remote.example/reliablemessaging"
    pinned = load_topology(_write(tmp_path, data), moved).by_asid("928000000001")
    assert pinned is not None
    assert pinned.endpoint == "https://mhs.remote.example/reliablemessaging"


def test_lookups(default: Directory) -> None:
    party = default.by_asid("918000000001")
    assert party is not None
    assert party.ods_code == "A80001"
    assert party.cpa_id == "S918000000001"
    token = default.credential_for(party.asid)
    assert token is not None
    assert default.by_credential(token) == party
    assert default.by_credential(token + "x") is None
    assert default.by_credential("") is None
    assert default.by_party_key(party.party_key) == (party,)
    assert default.recipient("A80001", "RCMR_IN010000UK05") == party
    assert default.recipient("ZZZZZ", "RCMR_IN010000UK05") is None


def test_recipient_prefers_an_accredited_system() -> None:
    topology = generate_topology(4, 0)
    raw = topology.model_dump(mode="json")
    first = raw["mhs"][0]["instances"][0]
    second = dict(
        first,
        name="Second system",
        asid="918000000099",
        party_key="A80001-0000099",
        credential="another-credential-0001",
    )
    first["interactions"] = ["MCCI_IN010000UK13"]
    raw["mhs"][0]["instances"].append(second)
    for mhs, original in zip(raw["mhs"], topology.mhs, strict=True):
        for item, inst in zip(mhs["instances"], original.instances, strict=False):
            item["credential"] = inst.credential.get_secret_value() if inst.credential else None
    raw["mhs"][0]["instances"][0]["credential"] = "first-credential-00001"
    directory = Directory(parse_topology(raw, "test"))
    assert directory.recipient("A80001", "RCMR_IN010000UK05").asid == "918000000099"  # type: ignore[union-attr]
    assert directory.recipient("A80001", "MCCI_IN010000UK13").asid == "918000000001"  # type: ignore[union-attr]


def test_shared_party_key_mode() -> None:
    directory = Directory(generate_topology(5, 2, shared_party_key=True))
    hosted = [p for p in directory.parties if p.hosted]
    assert {p.party_key for p in hosted} == {"YGA01-0000100"}
    assert len(directory.by_party_key("YGA01-0000100")) == 5


def _raw() -> dict:  # type: ignore[type-arg]
    text = (Path(__file__).parents[2] / "mhs/directory/default-topology.yaml").read_text()
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def _write(tmp_path: Path, data: object, name: str = "topology.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["mhs"][0]["instances"][2].__setitem__("asid", "12345"),
            "mhs[0] (datacentre).instances[2] (Hosted practice 3).asid: "
            "String should match pattern",
        ),
        (
            lambda d: d["mhs"][0]["instances"][3].__setitem__("asid", "918000000001"),
            "ASID 918000000001 is already used by datacentre/Hosted practice 1",
        ),
        (
            lambda d: d["mhs"][0]["instances"][0]["interactions"].append("NOPE_IN000000UK01"),
            "unknown interaction 'NOPE_IN000000UK01'",
        ),
        (
            lambda d: d["mhs"][0]["instances"][1].pop("credential"),
            "(Hosted practice 2) is hosted here but has no credential",
        ),
        (
            lambda d: d.setdefault("interactions", {}).__setitem__(
                "RCMR_IN010000UK05",
                {
                    "service": "urn:nhs:names:services:gp2gp",
                    "pattern": "forward-reliable",
                    "reliability": {
                        "retries": 2,
                        "retry_interval": "60",
                        "persist_duration": "PT5M",
                        "ack_requested": "always",
                        "duplicate_elimination": "always",
                        "sync_reply_mode": "None",
                    },
                },
            ),
            "interactions.RCMR_IN010000UK05.reliability.retry_interval: "
            "'60' is not an ISO-8601 duration",
        ),
        (lambda d: d["agreement_groups"].append(["A80001", "Q99999"]), "unknown ODS code 'Q99999'"),
        (
            lambda d: d["mhs"][1].pop("party_key"),
            "(Remote practice 1) has no party_key and the MHS has no shared party_key",
        ),
        (
            lambda d: [m.__setitem__("hosted", False) for m in d["mhs"]],
            "no MHS is marked hosted: true",
        ),
        (
            lambda d: d["mhs"][1].__setitem__("endpoint", "http://{host}:{inbound_prot}/rm"),
            "mhs[1] (remote).endpoint: unknown placeholder {inbound_prot} in "
            "'http://{host}:{inbound_prot}/rm': use {scheme}, {host}, {inbound_port}",
        ),
        (
            lambda d: d["mhs"][0].__setitem__("gpconnect_endpoint", "{host}:8085"),
            "mhs[0] (datacentre).gpconnect_endpoint: '{host}:8085' is not a base URL",
        ),
        (
            lambda d: d["mhs"][0]["instances"][0].__setitem__("colour", "blue"),
            "mhs[0] (datacentre).instances[0] (Hosted practice 1).colour: "
            "Extra inputs are not permitted",
        ),
    ],
)
def test_bad_topology_names_file_entry_and_problem(
    tmp_path: Path, mutate: object, expected: str
) -> None:
    data = _raw()
    mutate(data)  # type: ignore[operator]
    path = _write(tmp_path, data)
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    assert expected in message


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read"):
        load_topology(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("mhs: [unclosed")
    with pytest.raises(TopologyError, match="not valid YAML/JSON"):
        load_topology(bad)
    listy = tmp_path / "list.json"
    listy.write_text("[1, 2]")
    with pytest.raises(TopologyError, match="expected a mapping"):
        load_topology(listy)
    binary = tmp_path / "binary.yaml"
    binary.write_text("mhs: !!binary aGVsbG8=\n")
    with pytest.raises(TopologyError, match="JSON cannot represent") as caught:
        load_topology(binary)
    assert str(caught.value).startswith(str(binary))


def test_an_unquoted_asid_is_refused_not_turned_into_a_string(tmp_path: Path) -> None:
    data = _raw()
    data["mhs"][0]["instances"][0]["asid"] = 918000000001
    with pytest.raises(TopologyError) as caught:
        load_topology(_write(tmp_path, data))
    assert "instances[0] (Hosted practice 1).asid: Input should be a valid string" in str(
        caught.value
    )


def test_json_topology_loads(tmp_path: Path) -> None:

    path = tmp_path / "t.json"
    path.write_text(json.dumps(_raw()))
    assert len(list(load_topology(path).parties)) == 40  # 24 + 8 practices, 8 other consumers


def test_generated_sizes_scale() -> None:
    directory = Directory(generate_topology(1000, 250))
    assert sum(1 for p in directory.parties if p.hosted) == 1000
    assert directory.by_asid("918000001000") is not None


def test_star_is_the_whole_catalogue_and_a_bang_takes_one_away() -> None:
    directory = Directory(generate_topology(3, 2))
    first, last = directory.by_asid("918000000001"), directory.by_asid("918000000003")
    assert first is not None
    assert last is not None
    assert first.interactions >= set(directory.interactions)
    assert set(directory.interactions) - last.interactions == {"RCMR_IN030000UK06"}
    assert directory.spine is not None
    assert not directory.spine.accredited_for("RCMR_IN010000UK05")
    assert directory.spine.accredited_for("QUPA_IN040000UK32")


def test_a_bang_naming_no_interaction_is_refused() -> None:
    raw = _raw()
    raw["mhs"][0]["instances"][0]["interactions"].append("!NOPE_IN000000UK01")
    with pytest.raises(TopologyError, match="unknown interaction '!NOPE_IN000000UK01'"):
        parse_topology(raw, "t.yaml")
