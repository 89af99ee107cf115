"""landscape.claims.registry: every claim is a typed spec; quantities carry theirs; stored results are reproduced."""

import json
from pathlib import Path

import pytest

from landscape.claims import ClaimsResult, rejudge
from landscape.claims.quantities import quantities
from landscape.claims.registry import CLAIMS, KINDS, ClaimSpec, spec

THEORY = Path(__file__).resolve().parents[1] / "theory"


def test_every_spec_is_typed_and_writes_its_name_from_its_template():
    assert len(CLAIMS) == len({s.template + s.kind for s in CLAIMS.values()})  # no two specs alike
    for key, s in CLAIMS.items():
        assert s.key == key and s.kind in KINDS and s.hypothesis
        assert s.name("id").startswith(s.family) and "{tag}" not in s.name("id")
    assert spec("accuracy.ood").name("ood:blur") == "accuracy: PSNR [ood:blur]"
    assert (
        spec("explicit.flatness").name("flatness: Σ ‖H_k‖_F [id]")
        == "explicit ≈ jitter: flatness: Σ ‖H_k‖_F [id] ratio"
    )
    with pytest.raises(ValueError, match="claim key 'nope'"):
        spec("nope")
    with pytest.raises(ValueError, match="kind='bigger'"):
        ClaimSpec("x", "x", "x [{tag}]", "bigger", "h")


def test_each_quantity_carries_the_spec_of_the_claim_it_names():
    d = json.loads((THEORY / "results_claims_8seeds.json").read_text())
    q = quantities(d["checkpoints"][0])
    assert q and all(name == v.spec.name(name[name.rindex("[") + 1 : -1]) for name, v in q.items())
    assert (
        q["accuracy: PSNR [id]"].spec.key == "accuracy.id"
        and q["accuracy: PSNR [id]"].spec.kind == "noninferior"
    )
    assert {v.spec.key for n, v in q.items() if n.startswith("accuracy: PSNR [ood:")} == {"accuracy.ood"}
    assert {n for n, v in q.items() if v.spec.unit == "dB"} == {
        n for n in q if n.startswith(("accuracy", "attack"))
    }


@pytest.mark.parametrize("name", ["results_claims_8seeds.json", "results_claims_penalty.json"])
def test_rejudging_a_stored_result_gives_every_claim_its_stored_name_kind_and_hypothesis(name):
    saved = ClaimsResult.from_dict(json.loads((THEORY / name).read_text()), as_saved=True)
    again = rejudge(saved)
    assert [(c.name, c.group, c.kind, c.hypothesis, c.quantity) for c in again.claims] == [
        (c.name, c.group, c.kind, c.hypothesis, c.quantity) for c in saved.claims
    ]


def test_tag_inverts_name_for_every_spec_and_rejects_other_claims():
    for s in CLAIMS.values():
        for tag in ("id", "ood:spikes", "paper, σ=0.05", "paper, per sample, σ=0.1"):
            assert s.tag(s.name(tag)) == tag
    exp = spec("expansion")
    assert exp.tag("flatness: Σ tr H_k [id]") is None
    assert exp.tag("expansion: MC excess / predicted penalty [") is None  # cut short: not a name it writes
    assert spec("accuracy.id").tag("attack: PSNR under PGD [id]") is None
