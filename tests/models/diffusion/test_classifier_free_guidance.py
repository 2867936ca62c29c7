"""Classifier-free guidance wrapper: scale 1 / 0 limits, one batched forward, variance channels, null inputs."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from models.diffusion.guidance import ClassifierFreeGuidance, classifier_free_guidance, guided_combine

B, C = 3, 2
NULL_EMBEDDING = torch.tensor([0.7, -0.4])


class _MaskNet:
    """A conditional 'network' following the cond_mask contract, with a learned null embedding.

    out = tanh(x) · (1 + t/10) + e[:, :, None, None], e = label embedding or NULL_EMBEDDING where the mask is False.
    With ``learned_variance`` it appends C variance channels that also depend on the condition.
    """

    def __init__(self, learned_variance: bool = False) -> None:
        self.learned_variance = learned_variance
        self.batch_sizes: list[int] = []

    def __call__(
        self, x: Tensor, t: Tensor, *, label: Tensor, low_res: Tensor | None = None, cond_mask: Tensor | None = None
    ) -> Tensor:
        self.batch_sizes.append(x.shape[0])
        emb = torch.stack([label.float().sin(), label.float().cos()], dim=1)
        if cond_mask is not None:
            emb = torch.where(cond_mask[:, None], emb, NULL_EMBEDDING)
        out = torch.tanh(x) * (1 + t.float().reshape(-1, 1, 1, 1) / 10) + emb[:, :, None, None]
        if low_res is not None:
            out = out + low_res
        if self.learned_variance:
            out = torch.cat([out, 0.1 * emb[:, :, None, None].expand_as(x) - 0.2], dim=1)
        return out


def _inputs() -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, C, 4, 4, generator=g), torch.tensor([3, 7, 1]), {"label": torch.tensor([1, 2, 5])}


def _uncond(net: _MaskNet, x: Tensor, t: Tensor, cond: dict[str, Tensor]) -> Tensor:
    return net(x, t, **cond, cond_mask=torch.zeros(B, dtype=torch.bool))


@pytest.mark.parametrize("learned_variance", [False, True])
def test_scale_one_is_the_conditional_model(learned_variance: bool) -> None:
    net = _MaskNet(learned_variance)
    x, t, cond = _inputs()
    expected = net(x, t, **cond)
    assert torch.equal(classifier_free_guidance(net, 1.0)(x, t, **cond), expected)
    assert torch.equal(classifier_free_guidance(net, torch.ones(B))(x, t, **cond), expected)


def test_scale_zero_is_the_unconditional_model() -> None:
    net = _MaskNet()
    x, t, cond = _inputs()
    torch.testing.assert_close(classifier_free_guidance(net, 0.0)(x, t, **cond), _uncond(net, x, t, cond))


def test_guided_output_runs_one_batched_forward_and_extrapolates() -> None:
    net = _MaskNet()
    x, t, cond = _inputs()
    c, u = net(x, t, **cond), _uncond(net, x, t, cond)
    net.batch_sizes.clear()
    guided = ClassifierFreeGuidance(net, 3.0)(x, t, **cond)
    assert net.batch_sizes == [2 * B]
    torch.testing.assert_close(guided, u + 3.0 * (c - u))


def test_learned_variance_channels_are_the_conditional_ones() -> None:
    net = _MaskNet(learned_variance=True)
    x, t, cond = _inputs()
    c, u = net(x, t, **cond), _uncond(net, x, t, cond)
    assert not torch.equal(c[:, C:], u[:, C:])  # the variance does depend on the condition
    guided = classifier_free_guidance(net, 4.0)(x, t, **cond)
    assert torch.equal(guided[:, C:], c[:, C:])
    torch.testing.assert_close(guided[:, :C], u[:, :C] + 4.0 * (c[:, :C] - u[:, :C]))
    everything = classifier_free_guidance(net, 4.0, split_variance=False)(x, t, **cond)
    torch.testing.assert_close(everything, u + 4.0 * (c - u))


def test_per_sample_scales_match_one_scale_per_call() -> None:
    net = _MaskNet(learned_variance=True)
    x, t, cond = _inputs()
    scales = torch.tensor([0.0, 1.0, 5.5])
    batched = classifier_free_guidance(net, scales)(x, t, **cond)
    for i, s in enumerate(scales.tolist()):
        single = classifier_free_guidance(net, s)(x[i : i + 1], t[i : i + 1], label=cond["label"][i : i + 1])
        torch.testing.assert_close(batched[i : i + 1], single)


def test_other_batched_keywords_repeat_and_a_given_mask_is_kept() -> None:
    net = _MaskNet()
    x, t, cond = _inputs()
    low_res = torch.randn(B, C, 4, 4, generator=torch.Generator().manual_seed(1))
    partial = torch.tensor([True, False, True])
    c = net(x, t, **cond, low_res=low_res, cond_mask=partial)
    u = net(x, t, **cond, low_res=low_res, cond_mask=torch.zeros(B, dtype=torch.bool))
    guided = classifier_free_guidance(net, 2.0)(x, t, **cond, low_res=low_res, cond_mask=partial)
    torch.testing.assert_close(guided, u + 2.0 * (c - u))


def test_explicit_null_condition_with_batch_one_broadcasts() -> None:
    calls: list[Tensor] = []

    def tokens_net(x: Tensor, t: Tensor, *, tokens: Tensor) -> Tensor:
        calls.append(tokens)
        return x * tokens.float().mean(dim=1).reshape(-1, 1, 1, 1)

    x, t, _ = _inputs()
    tokens = torch.tensor([[5, 6], [7, 8], [9, 9]])
    empty = torch.tensor([[1, 1]])
    guided = classifier_free_guidance(tokens_net, 2.0, null_cond={"tokens": empty}, mask_keys=())(x, t, tokens=tokens)
    assert torch.equal(calls[-1], torch.cat([tokens, empty.expand(B, 2)]))
    c, u = tokens_net(x, t, tokens=tokens), tokens_net(x, t, tokens=empty.expand(B, 2))
    torch.testing.assert_close(guided, u + 2.0 * (c - u))


def test_several_mask_keys_are_all_dropped_in_the_unconditional_half() -> None:
    seen: dict[str, Tensor] = {}

    def two_mask_net(x: Tensor, t: Tensor, *, image_cond_mask: Tensor, text_cond_mask: Tensor) -> Tensor:
        seen.update(image=image_cond_mask, text=text_cond_mask)
        return x + image_cond_mask.float().reshape(-1, 1, 1, 1) + 2 * text_cond_mask.float().reshape(-1, 1, 1, 1)

    x, t, _ = _inputs()
    guided = classifier_free_guidance(two_mask_net, 2.0, mask_keys=("image_cond_mask", "text_cond_mask"))(x, t)
    half = torch.tensor([True] * B + [False] * B)
    assert torch.equal(seen["image"], half) and torch.equal(seen["text"], half)
    torch.testing.assert_close(guided, x + 2.0 * 3.0)


def test_guided_combine_on_vectors() -> None:
    c, u = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 1.0]])
    assert torch.equal(guided_combine(c, u, 2.0), torch.tensor([[2.0, 3.0]]))


def test_misuse_raises_one_line_errors() -> None:
    net = _MaskNet()
    x, t, cond = _inputs()
    with pytest.raises(ValueError, match="per-sample guidance scale"):
        classifier_free_guidance(net, torch.ones(B + 1))(x, t, **cond)
    with pytest.raises(ValueError, match="null_cond keys"):
        classifier_free_guidance(net, 2.0, null_cond={"tokens": torch.zeros(1, 2)})(x, t, **cond)
    with pytest.raises(ValueError, match="split_variance=True"):
        classifier_free_guidance(net, 2.0, split_variance=True)(x, t, **cond)
    with pytest.raises(ValueError, match="batch 3"):
        classifier_free_guidance(net, 2.0, null_cond={"label": torch.zeros(2)})(x, t, **cond)
