"""GaussianDiffusion: forward process, posterior, parameterisations, variances and losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch import Tensor

from models.diffusion.gaussian import (
    GaussianDiffusion,
    ModelMeanType,
    ModelVarType,
    discretized_gaussian_log_likelihood,
    normal_kl,
)
from models.diffusion.schedules import get_named_beta_schedule

T = 100


def _diffusion(
    mean_type: ModelMeanType = ModelMeanType.EPSILON,
    var_type: ModelVarType = ModelVarType.FIXED_SMALL,
    schedule: str = "cosine",
) -> GaussianDiffusion:
    return GaussianDiffusion(get_named_beta_schedule(schedule, T), mean_type, var_type)


def _batch(seed: int = 0, shape: tuple[int, ...] = (4, 3, 5, 5)) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
    noise = torch.randn(shape, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, T // 2, T - 1])[: shape[0]]
    return x0, noise, t


@pytest.mark.parametrize("step", [0, 37, T - 1])
def test_q_sample_has_the_marginal_mean_and_variance(step: int) -> None:
    diffusion = _diffusion(schedule="linear")
    g = torch.Generator().manual_seed(1)
    n = 200_000
    x0 = torch.full((n, 1), 0.6, dtype=torch.float64)
    x_t = diffusion.q_sample(x0, torch.full((n,), step), torch.randn(n, 1, generator=g, dtype=torch.float64))
    alpha_bar = diffusion.alphas_cumprod[step]
    std = math.sqrt(1 - alpha_bar)
    assert x_t.mean().item() == pytest.approx(math.sqrt(alpha_bar) * 0.6, abs=5 * std / math.sqrt(n))
    assert x_t.var().item() == pytest.approx(1 - alpha_bar, rel=5 * math.sqrt(2 / n))
    mean, var, log_var = diffusion.q_mean_variance(x0[:2], torch.full((2,), step))
    assert torch.allclose(mean, torch.full_like(mean, math.sqrt(alpha_bar) * 0.6))
    assert torch.allclose(log_var.exp(), var)


def test_eps_x0_v_conversions_round_trip() -> None:
    diffusion = _diffusion()
    x0, eps, t = _batch()
    x_t = diffusion.q_sample(x0, t, eps)
    torch.testing.assert_close(diffusion.predict_x0_from_eps(x_t, t, eps), x0)
    torch.testing.assert_close(diffusion.predict_eps_from_x0(x_t, t, x0), eps)
    v = diffusion.get_v(x0, eps, t)
    torch.testing.assert_close(diffusion.predict_x0_from_v(x_t, t, v), x0)
    torch.testing.assert_close(diffusion.predict_eps_from_v(x_t, t, v), eps)


def test_posterior_matches_bayes_rule_for_the_two_gaussians() -> None:
    """q(x_{t-1}|x_t,x_0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x_0): the product of two Gaussians, derived independently."""
    diffusion = _diffusion(schedule="linear")
    x0, eps, _ = _batch()
    for step in [1, 2, 50, T - 1]:
        t = torch.full((x0.shape[0],), step)
        x_t = diffusion.q_sample(x0, t, eps)
        beta = diffusion.betas[step]
        alpha_bar_prev = float(np.prod(1 - diffusion.betas[:step]))
        precision = 1 / (1 - alpha_bar_prev) + (1 - beta) / beta
        mean_ref = (
            math.sqrt(alpha_bar_prev) * x0 / (1 - alpha_bar_prev) + math.sqrt(1 - beta) * x_t / beta
        ) / precision
        mean, var, log_var = diffusion.q_posterior_mean_variance(x0, x_t, t)
        torch.testing.assert_close(mean, mean_ref)
        torch.testing.assert_close(var, torch.full_like(var, 1 / precision))
        torch.testing.assert_close(log_var, torch.full_like(var, math.log(1 / precision)))
    t0 = torch.zeros(x0.shape[0], dtype=torch.long)
    mean, var, log_var = diffusion.q_posterior_mean_variance(x0, diffusion.q_sample(x0, t0, eps), t0)
    torch.testing.assert_close(mean, x0)  # at the first step the posterior collapses onto x0
    assert torch.all(var == 0) and torch.isfinite(log_var).all()


@pytest.mark.parametrize("mean_type", list(ModelMeanType))
def test_oracle_model_of_each_parameterisation_gives_the_true_posterior(mean_type: ModelMeanType) -> None:
    diffusion = _diffusion(mean_type)
    x0, eps, t = _batch()
    x_t = diffusion.q_sample(x0, t, eps)
    target = {
        ModelMeanType.EPSILON: eps,
        ModelMeanType.START_X: x0,
        ModelMeanType.VELOCITY: diffusion.get_v(x0, eps, t),
    }[mean_type]
    seen: dict[str, Tensor] = {}

    def model_fn(x: Tensor, tt: Tensor, **cond: Tensor) -> Tensor:
        seen.update(cond, t=tt)
        return target

    label = torch.arange(4)
    out = diffusion.p_mean_variance(model_fn, x_t, t, {"label": label}, clip_denoised=False)
    true_mean, _, true_log_var = diffusion.q_posterior_mean_variance(x0, x_t, t)
    torch.testing.assert_close(out.pred_x0, x0)
    torch.testing.assert_close(out.pred_eps, eps)
    torch.testing.assert_close(out.mean, true_mean)
    torch.testing.assert_close(out.log_variance, true_log_var)
    assert torch.equal(seen["label"], label) and torch.equal(seen["t"], t)


def test_clip_denoised_clamps_x0_to_pixel_range() -> None:
    diffusion = _diffusion(ModelMeanType.START_X)
    x = torch.zeros(2, 1, 2, 2)
    out = diffusion.p_mean_variance(lambda x, t: torch.full_like(x, 3.0), x, torch.tensor([5, 5]))
    assert torch.all(out.pred_x0 == 1.0)
    shifted = diffusion.p_mean_variance(
        lambda x, t: torch.full_like(x, 3.0), x, torch.tensor([5, 5]), clip_denoised=False, denoised_fn=lambda z: z - 1
    )
    assert torch.all(shifted.pred_x0 == 2.0)


def test_fixed_and_learned_variances() -> None:
    x0, eps, t = _batch()
    large = _diffusion(var_type=ModelVarType.FIXED_LARGE)
    out = large.p_mean_variance(lambda x, tt: eps, x0, t, clip_denoised=False)
    expected = np.append(large.posterior_variance[1], large.betas[1:])[t.numpy()]
    torch.testing.assert_close(out.variance[:, 0, 0, 0], torch.tensor(expected))

    learned = _diffusion(var_type=ModelVarType.LEARNED_RANGE)
    for v, ref in [(1.0, np.log(learned.betas)), (-1.0, learned.posterior_log_variance_clipped)]:
        output = torch.cat([eps, torch.full_like(eps, v)], dim=1)
        out = learned.p_mean_variance(lambda x, tt, o=output: o, x0, t, clip_denoised=False)
        torch.testing.assert_close(out.log_variance[:, 0, 0, 0], torch.tensor(ref[t.numpy()]))
    small = _diffusion().p_mean_variance(lambda x, tt: eps, x0, t, clip_denoised=False)
    torch.testing.assert_close(
        small.log_variance[:, 0, 0, 0], torch.tensor(learned.posterior_log_variance_clipped[t.numpy()])
    )


def test_output_shape_mismatches_raise() -> None:
    x0, eps, t = _batch()
    with pytest.raises(ValueError, match="2×C channels"):
        _diffusion(var_type=ModelVarType.LEARNED_RANGE).p_mean_variance(lambda x, tt: eps, x0, t)
    with pytest.raises(ValueError, match="must equal x shape"):
        _diffusion().p_mean_variance(lambda x, tt: torch.cat([eps, eps], 1), x0, t)
    with pytest.raises(ValueError, match="noise shape"):
        _diffusion().q_sample(x0, t, eps[:, :1])


@pytest.mark.parametrize("betas", [np.array([]), np.array([0.1, 0.0]), np.array([0.5, 1.5]), np.ones((2, 2)) * 0.1])
def test_bad_betas_raise(betas: np.ndarray) -> None:
    with pytest.raises(ValueError, match="betas"):
        GaussianDiffusion(betas)


def test_normal_kl_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(3)
    m1, m2, lv1, lv2 = (torch.randn(50, generator=g, dtype=torch.float64) for _ in range(4))
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(m1, (0.5 * lv1).exp()), torch.distributions.Normal(m2, (0.5 * lv2).exp())
    )
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), ref)


def test_discretized_log_likelihood_matches_scipy_bins() -> None:
    x = torch.tensor([-1.0, -1 + 2 / 255, -0.2 + 1 / 255, 0.0 + 1 / 255, 0.5 - 1 / 255, 1.0], dtype=torch.float64)
    mean = torch.tensor([-0.9, -1.0, -0.1, 0.05, 0.4, 0.95], dtype=torch.float64)
    std = torch.tensor([0.1, 0.02, 0.3, 0.01, 0.2, 0.05], dtype=torch.float64)
    got = discretized_gaussian_log_likelihood(x, mean, std.log())
    cdf = scipy.stats.norm(mean.numpy(), std.numpy()).cdf
    xs = x.numpy()
    ref = np.where(
        xs < -0.999,
        cdf(xs + 1 / 255),
        np.where(xs > 0.999, 1 - cdf(xs - 1 / 255), cdf(xs + 1 / 255) - cdf(xs - 1 / 255)),
    )
    np.testing.assert_allclose(got.numpy(), np.log(ref), rtol=1e-9)


@pytest.mark.parametrize("mean_type", list(ModelMeanType))
def test_training_loss_is_mse_against_the_parameterisation_target(mean_type: ModelMeanType) -> None:
    diffusion = _diffusion(mean_type)
    x0, eps, t = _batch()
    losses = diffusion.training_losses(lambda x, tt: torch.zeros_like(x), x0, t, eps)
    target = {ModelMeanType.EPSILON: eps, ModelMeanType.START_X: x0}.get(mean_type)
    if target is None:
        ab = torch.tensor(diffusion.alphas_cumprod[t.numpy()]).reshape(-1, 1, 1, 1)
        target = ab.sqrt() * eps - (1 - ab).sqrt() * x0
    torch.testing.assert_close(losses["loss"], (target**2).mean(dim=(1, 2, 3)))
    assert set(losses) == {"loss", "mse"}


class _TinyLearnedVarianceNet(torch.nn.Module):
    """out = [w_mean · x, w_var · x]: separate parameters for the mean and the variance channels."""

    def __init__(self) -> None:
        super().__init__()
        self.w_mean = torch.nn.Parameter(torch.tensor(0.3, dtype=torch.float64))
        self.w_var = torch.nn.Parameter(torch.tensor(0.1, dtype=torch.float64))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return torch.cat([self.w_mean * x, self.w_var * x], dim=1)


def test_hybrid_loss_is_finite_and_the_vlb_does_not_train_the_mean() -> None:
    diffusion = _diffusion(var_type=ModelVarType.LEARNED_RANGE)
    net = _TinyLearnedVarianceNet()
    x0, eps, t = _batch()
    x0 = (x0 * 127.5).round() / 127.5  # 8-bit grid, for the t = 0 decoder NLL
    losses = diffusion.training_losses(net, x0, t, eps)
    assert set(losses) == {"loss", "mse", "vb"}
    assert torch.isfinite(losses["loss"]).all() and torch.all(losses["vb"] > 0)
    torch.testing.assert_close(losses["loss"], losses["mse"] + 0.001 * T * losses["vb"])

    losses["vb"].sum().backward(retain_graph=True)
    assert net.w_mean.grad is None or net.w_mean.grad.item() == 0.0
    assert net.w_var.grad is not None and net.w_var.grad.item() != 0.0
    net.zero_grad()
    losses["loss"].sum().backward()
    assert net.w_mean.grad is not None and net.w_mean.grad.item() != 0.0


def test_vb_term_at_step_zero_is_the_decoder_nll_in_bits() -> None:
    diffusion = _diffusion(var_type=ModelVarType.LEARNED_RANGE)
    x0, eps, _ = _batch()
    t = torch.zeros(4, dtype=torch.long)
    x_t = diffusion.q_sample(x0, t, eps)
    output = torch.cat([eps, torch.zeros_like(eps)], dim=1)
    p = diffusion.p_mean_variance_from_output(output, x_t, t, clip_denoised=False)
    nll = -discretized_gaussian_log_likelihood(x0, p.mean, 0.5 * p.log_variance).mean(dim=(1, 2, 3)) / math.log(2)
    torch.testing.assert_close(diffusion.vb_terms_bpd(output, x0, x_t, t), nll)
