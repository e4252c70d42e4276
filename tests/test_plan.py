"""Plan: surrogate `arch` resolution, ensembles, and the one cache-key scheme (what changes a key)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from medaudit.attackers import zoo
from medaudit.core.cache import content_key
from medaudit.core.errors import AuditInputError
from medaudit.engine.inputs import delivered, live
from medaudit.engine.plan import SEARCH_IMAGES, RunContext, atlas_ids, make_plan, resolve_arch
from medaudit.scenario.threat_model import Scenario, SurrogateRow
from medaudit.target.card import TargetCard
from tests.conftest import tiny_target, write_synthetic_npz


def card(arch: str | None) -> TargetCard:
    return TargetCard(architecture=arch)


@pytest.mark.parametrize(
    "init, target_arch, expected",
    [
        ("random", "efficientnet_lite0", "resnet18"),
        ("random", "mobilenet_v2", "resnet18"),
        ("random", "resnet18", "densenet121"),
        ("random", "tiny_cnn", "resnet18"),
        ("imagenet", "efficientnet_lite0", "mobilenet_v2"),
        ("imagenet", "mobilenet_v2", "efficientnet_lite0"),
        ("imagenet", "resnet18", "mobilenet_v2"),
    ],
)
def test_arch_different_is_another_family(init, target_arch, expected):
    got = resolve_arch(SurrogateRow(arch="different", init=init), card(target_arch), "m.onnx")
    assert got == expected
    assert zoo.family(got) != zoo.family(target_arch)


def test_arch_same_is_the_targets_and_names_resolve():
    assert resolve_arch(SurrogateRow(arch="same"), card("mobilenet_v2"), "m.onnx") == "mobilenet_v2"
    assert resolve_arch(SurrogateRow(arch="resnet18"), card(None), "m.onnx") == "resnet18"


def test_arch_same_or_different_without_card_architecture_says_what_to_add():
    with pytest.raises(AuditInputError) as err:
        resolve_arch(SurrogateRow(arch="different"), card(None), "m.onnx")
    assert str(err.value) == (
        "m.onnx: surrogate `arch: different` needs the target card's `architecture` "
        f"(one of {', '.join(zoo.ARCHITECTURES)}); add `architecture: NAME` to the card"
    )


def test_unknown_arch_names_the_nearest():
    with pytest.raises(AuditInputError, match=r"did you mean 'resnet18'\?"):
        resolve_arch(SurrogateRow(arch="resnet19"), card(None), "m.onnx")


def test_atlas_ids_never_claim_queries():
    assert atlas_ids(SurrogateRow(init="random")) == ("AML.T0043.002", "AML.T0005.000")
    assert atlas_ids(SurrogateRow(init="imagenet")) == ("AML.T0043.002", "AML.T0005.000", "AML.T0005.002")


def test_content_key_is_stable_and_sensitive():
    base = {"attack": {"name": "fgsm"}, "epsilons_pm1": [0.01], "seed": 0}
    assert content_key("cell", base) == content_key("cell", dict(reversed(list(base.items()))))
    assert content_key("cell", base) != content_key("cell", {**base, "seed": 1})
    assert content_key("cell", base) != content_key("adversarial", base)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("plan")
    data = write_synthetic_npz(root / "blobs.npz", counts=(240, 60, 80))
    model = tiny_target(root / "t.onnx")
    return root, data, model


def _plan(setup, **scenario):
    root, data, model = setup
    sc = Scenario.model_validate({"name": "p", "data": {"source": str(data)}, **scenario})
    ctx = RunContext(
        scenario=sc,
        target_path=str(model),
        data_source=str(data),
        device="cpu",
        batch_size=32,
        cache_dir=str(root / "cache"),
        torch_threads=1,
    )
    ctx, lv = delivered(ctx)
    return make_plan(ctx, lv.target.card, lv.target.sha256, lv.data, lv.test_sha256)


def test_plan_jobs_ids_and_keys(setup):
    plan = _plan(
        setup,
        surrogates={"arch": ["same"], "data": ["d2"], "seed": [0, 1]},
        attacks=[{"name": "fgsm"}, {"name": "pgd"}],
        epsilons_pm1=[0.01, 0.02],
    )
    assert [s.row_id for s in plan.surrogates] == ["same-random-d2"] * 2
    assert len({s.key for s in plan.surrogates}) == 2
    assert [c.id.split("/", 1)[1] for c in plan.cells] == ["fgsm", "pgd-step0.01-it20"] * 2
    assert all(c.grid.epsilons_pm1 == (0.01, 0.02) and c.grid.search_key is None for c in plan.cells)
    assert len({c.key for c in plan.cells}) == 4 and len({c.adversarial_key for c in plan.cells}) == 4
    assert plan.searches == () and plan.bounds == ()  # an explicit grid needs no search; no bound tier was named
    assert [c.other_ids for c in plan.cells[:1]] == [(plan.surrogates[1].id,)]  # its sibling checks its transfer


def test_cell_keys_follow_the_target_adversarial_keys_do_not(setup, tmp_path):
    plan = _plan(setup, surrogates={"arch": ["tiny_cnn"], "data": ["d2"]}, attacks=[{"name": "fgsm"}])
    other_model = tiny_target(tmp_path / "other.onnx", seed=5)
    ctx = replace(plan.context, target_path=str(other_model))
    lv = live(ctx)
    other = make_plan(ctx, lv.target.card, lv.target.sha256, lv.data, lv.test_sha256)
    assert other.surrogates[0].key == plan.surrogates[0].key  # surrogates know nothing of the target
    assert other.cells[0].adversarial_key == plan.cells[0].adversarial_key  # nor do their adversarial images
    assert other.cells[0].key != plan.cells[0].key  # the measurement does


def test_surrogate_keys_change_with_training_settings(setup):
    a = _plan(setup, surrogates={"arch": ["tiny_cnn"]}, training={"epochs": 2})
    b = _plan(setup, surrogates={"arch": ["tiny_cnn"]}, training={"epochs": 3})
    assert a.surrogates[0].key != b.surrogates[0].key


def test_ensembles_of_seeds_and_of_named_rows(setup):
    plan = _plan(
        setup,
        surrogates=[
            {"arch": "tiny_cnn", "data": "d2", "seed": 0},
            {"arch": "tiny_cnn", "data": "d2", "seed": 1},
            {"arch": "tiny_cnn", "data": "d1", "seed": 0},
        ],
        ensembles=["seeds", ["tiny_cnn-random-d2", "tiny_cnn-random-d1"]],
        attacks=[{"name": "fgsm"}],
    )
    ensembles = [c for c in plan.cells if len(c.member_ids) > 1]
    assert [(c.row_id, len(c.member_ids)) for c in ensembles] == [
        ("tiny_cnn-random-d2", 2),
        ("tiny_cnn-random-d2+tiny_cnn-random-d1", 3),
    ]
    assert all(c.attacker_id.startswith("ens-") for c in ensembles)
    # every row an ensemble holds whole, and the one-seed row, gets a held-out probe (next seed), never an attacker
    probes = [s for s in plan.surrogates if s.role == "probe"]
    assert [(p.row_id, p.row.seed) for p in probes] == [("tiny_cnn-random-d2", 2), ("tiny_cnn-random-d1", 1)]
    assert {c.attacker_id for c in plan.cells}.isdisjoint(p.id for p in probes)
    assert ensembles[0].other_ids == (probes[0].id,)  # the ensemble's transfer is checked on its row's probe
    assert ensembles[1].other_ids == tuple(p.id for p in probes)


def test_auto_searches_each_attack_once_and_bounds_attack_the_target(setup):
    plan = _plan(
        setup,
        surrogates={"arch": ["tiny_cnn"], "data": ["d2"], "seed": [0, 1]},
        attacks=[{"name": "fgsm"}, {"name": "apgd", "images": 20}, {"name": "square", "images": 30}],
    )
    assert [s.id for s in plan.searches] == [
        "search/fgsm",
        "search/apgd-margin+ce-it100-r1-n20",
        "search/square-margin-q1000-p0.8-n30",
    ]
    assert plan.searches[0].reference == plan.surrogates[0].spec  # transfer attacks are searched on the first surrogate
    assert plan.searches[1].reference is None  # the bound tiers on the target itself
    assert all(len(s.images) == SEARCH_IMAGES for s in plan.searches)
    assert [c.grid.search_key for c in plan.cells] == [plan.searches[0].key] * 2
    assert [(b.tier, b.row_id, len(b.images)) for b in plan.bounds] == [
        ("whitebox", "whitebox", 20),
        ("query", "query", 30),
    ]
    assert plan.bounds[0].grid.search_key == plan.searches[1].key


def test_ensemble_naming_an_unknown_row_is_refused():
    with pytest.raises(ValueError, match="ensembles.0: unknown surrogate row 'same-random-d9'"):
        Scenario.model_validate({"name": "p", "ensembles": [["same-random-d9"]]})


def test_bound_tier_subsets_are_nested_so_the_order_check_has_common_images():
    import numpy as np

    from medaudit.data import stratified_subset

    y = np.array([0] * 70 + [1] * 30)
    small, large = stratified_subset(y, 20, 3, nested=True), stratified_subset(y, 40, 3, nested=True)
    assert set(small) <= set(large) and (len(small), len(large)) == (20, 40)
    assert (y[small] == 1).sum() == 6 and (y[large] == 1).sum() == 12  # each class keeps its share
    assert np.array_equal(small, stratified_subset(y, 20, 3, nested=True))
    assert not np.array_equal(small, stratified_subset(y, 20, 4, nested=True))
    assert np.array_equal(stratified_subset(y, 100, 3, nested=True), np.arange(100))


def test_delivery_follows_the_sources_bit_depth(setup):
    plan = _plan(setup, surrogates={"arch": ["tiny_cnn"], "data": ["d2"]}, attacks=[{"name": "fgsm"}])
    assert plan.context.scenario.delivery == "uint8"  # an 8-bit .npz: adversarial images rounded to grey levels
    sc = Scenario.model_validate({"name": "p"})
    assert sc.delivery == "source" and sc.delivered_at(16).delivery == "float"  # deeper files carry finer edits
    assert Scenario.model_validate({"name": "p", "delivery": "float"}).delivered_at(8).delivery == "float"
    with pytest.raises(ValueError, match="resolve `delivery: source`"):
        make_plan(replace(plan.context, scenario=sc), *[None] * 4)
