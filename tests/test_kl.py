"""KL estimators and coefficient controllers against hand-computed values."""

import math

import pytest
import torch

from rlcore.kl import AdaptiveKLController, FixedKLController, KLConfig, kl_estimate, make_kl_controller


def test_estimators_match_hand_computed_values():
    # Token 1: policy 0.5, reference 0.25 (r = 0.5). Token 2: policy 0.25, reference 0.5 (r = 2). Token 3: equal.
    logp = torch.tensor([math.log(0.5), math.log(0.25), math.log(0.3)])
    ref = torch.tensor([math.log(0.25), math.log(0.5), math.log(0.3)])
    # k1 = log p - log p_ref: log 2, -log 2, 0
    torch.testing.assert_close(kl_estimate(logp, ref, "k1"), torch.tensor([0.693147, -0.693147, 0.0]))
    # k2 = (log 2)^2 / 2 = 0.240227 both ways
    torch.testing.assert_close(kl_estimate(logp, ref, "k2"), torch.tensor([0.240227, 0.240227, 0.0]))
    # k3 = (r - 1) - log r: -0.5 + log 2 = 0.193147; 1 - log 2 = 0.306853
    torch.testing.assert_close(kl_estimate(logp, ref, "k3"), torch.tensor([0.193147, 0.306853, 0.0]))
    torch.testing.assert_close(kl_estimate(logp, ref), kl_estimate(logp, ref, "k1"))  # k1 is the default


def test_k3_is_non_negative_and_exact_near_zero():
    g = torch.Generator().manual_seed(0)
    logp, ref = torch.randn(10_000, generator=g) * 3, torch.randn(10_000, generator=g) * 3
    assert (kl_estimate(logp, ref, "k3") >= 0).all()
    # For log r = 1e-4, k3 ~ (log r)^2 / 2 = 5e-9; exp(x) - 1 in float32 would round it to a wrong value.
    tiny = kl_estimate(torch.tensor([0.0]), torch.tensor([1e-4]), "k3")
    torch.testing.assert_close(tiny, torch.tensor([5e-9]), rtol=1e-2, atol=0)


def test_k1_and_k3_are_unbiased_on_a_sampled_categorical():
    q, p = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.1, 0.3, 0.6])  # policy, reference
    exact = (q * (q / p).log()).sum().item()  # 1.1019
    tokens = torch.multinomial(q, 100_000, replacement=True, generator=torch.Generator().manual_seed(0))
    logp, ref = q.log()[tokens], p.log()[tokens]
    assert abs(kl_estimate(logp, ref, "k1").mean().item() - exact) < 0.02
    assert abs(kl_estimate(logp, ref, "k3").mean().item() - exact) < 0.02
    # k2 is biased (its expectation here is 1.5023): the tolerance above would catch a swapped estimator.
    assert abs(kl_estimate(logp, ref, "k2").mean().item() - exact) > 0.2


def test_estimator_errors_name_the_choices():
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl_estimate(torch.zeros(2), torch.zeros(2), "k4")
    with pytest.raises(ValueError, match="one shape"):
        kl_estimate(torch.zeros(2), torch.zeros(3))


def test_adaptive_controller_follows_ziegler_with_clip():
    c = AdaptiveKLController(init_coef=0.1, target=6.0, horizon=10_000)
    c.update(9.0, 1000)  # error 0.5 clipped to 0.2: 0.1 * (1 + 0.2 * 0.1) = 0.102
    assert c.coef == pytest.approx(0.102)
    c.update(6.6, 1000)  # error 0.1: 0.102 * 1.01 = 0.10302
    assert c.coef == pytest.approx(0.10302)
    c.update(0.0, 2000)  # error -1 clipped to -0.2: 0.10302 * (1 - 0.04) = 0.0988992
    assert c.coef == pytest.approx(0.0988992)
    c.update(6.0, 5000)  # on target: unchanged
    assert c.coef == pytest.approx(0.0988992)
    c.update(3.0, 5000)  # error -0.5 clipped to -0.2: 0.0988992 * 0.9 = 0.08900928
    assert c.coef == pytest.approx(0.08900928)


def test_fixed_controller_never_changes():
    c = FixedKLController(0.05)
    for kl in (0.0, 1.0, 100.0):
        c.update(kl, 10_000)
    assert c.coef == 0.05


def test_state_dict_round_trip():
    a = AdaptiveKLController(0.2, 1.0, 100)
    a.update(5.0, 50)
    b = AdaptiveKLController(1.0, 3.0, 7)
    b.load_state_dict(a.state_dict())
    assert (b.coef, b.target, b.horizon) == (a.coef, a.target, a.horizon) == (pytest.approx(0.22), 1.0, 100)
    b.update(0.0, 50)
    a.update(0.0, 50)
    assert b.coef == a.coef
    f = FixedKLController(0.0)
    f.load_state_dict(FixedKLController(0.3).state_dict())
    assert f.coef == 0.3


def test_make_kl_controller_picks_by_target():
    fixed = make_kl_controller(KLConfig(coef=0.1))
    adaptive = make_kl_controller(KLConfig(coef=0.1, target=6.0, horizon=500))
    assert isinstance(fixed, FixedKLController) and fixed.coef == 0.1
    assert isinstance(adaptive, AdaptiveKLController) and (adaptive.target, adaptive.horizon) == (6.0, 500)


@pytest.mark.parametrize("make, field", [
    (lambda: FixedKLController(-0.1), "coef"),
    (lambda: FixedKLController(float("nan")), "coef"),
    (lambda: AdaptiveKLController(-1.0, 6.0, 100), "init_coef"),
    (lambda: AdaptiveKLController(0.1, 0.0, 100), "target"),
    (lambda: AdaptiveKLController(0.1, 6.0, 0), "horizon"),
    (lambda: KLConfig(coef=0.1, target=-1.0), "target"),
    (lambda: KLConfig(coef=-0.1), "coef"),
    (lambda: KLConfig(horizon=0), "horizon"),
    (lambda: KLConfig(estimator="k4"), "estimator"),
    (lambda: KLConfig(penalty="loss", estimator="k1"), "estimator"),
    (lambda: AdaptiveKLController(0.1, 6.0, 10).update(1.0, -1), "n_steps"),
])
def test_bad_arguments_name_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_a_zero_fixed_coefficient_skips_the_reference_and_an_adaptive_one_never_does():
    assert KLConfig(coef=0.0).skips_reference
    assert not KLConfig(coef=0.0, target=1.0).skips_reference and not KLConfig(coef=0.1).skips_reference
