"""The last-block change of each peer computes its published formula (hand-made tensors, explicit math),
and the dense features have the right shapes on random-init real architectures."""

import math

import pytest
import torch
from torch import nn

from car.clip.surgery import block_forward
from car.methods.peers.attention import (
    attention_weights,
    changed_last_block,
    neighbourhood_bias,
)
from car.methods.peers.features import LastBlock, dense_embeddings


class OneHeadBlock(nn.Module):
    """A one-head, width-2 block whose q, k, v projections and out_proj are chosen by hand.

    Token z = ln_1(x) = x (identity norm), q = z, k = 2 z, v = [z_0 + z_1, z_0 - z_1], out_proj = 3 * I.
    """

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(2, 1, batch_first=True)
        with torch.no_grad():
            self.attn.in_proj_weight.copy_(torch.tensor([[1.0, 0], [0, 1], [2, 0], [0, 2], [1, 1], [1, -1]]))
            self.attn.in_proj_bias.zero_()
            self.attn.out_proj.weight.copy_(3 * torch.eye(2))
            self.attn.out_proj.bias.zero_()
        self.ln_1 = self.ln_2 = self.ls_1 = self.ls_2 = nn.Identity()
        self.mlp = nn.Identity()  # FFN(y) = y, so "y + FFN(y)" doubles y


X = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # [B=1, T=3, C=2]


def softmax_rows(rows):
    out = []
    for row in rows:
        e = [math.exp(v) for v in row]
        out.append([v / sum(e) for v in e])
    return out


def by_hand(weight_rows, residual: bool, ffn: bool):
    """y_i = 3 * sum_j A_ij v_j (+ x_i) (then doubled by the identity FFN), in plain Python."""
    toks = X[0].tolist()
    values = [[a + b, a - b] for a, b in toks]
    out = []
    for i, row in enumerate(weight_rows):
        y = [3 * sum(row[j] * values[j][c] for j in range(3)) for c in range(2)]
        if residual:
            y = [y[c] + toks[i][c] for c in range(2)]
        if ffn:
            y = [2 * y[c] for c in range(2)]
        out.append(y)
    return torch.tensor([out])


def gram(vectors, factor):
    s = 1 / math.sqrt(2)  # head_dim = 2
    return [[s * factor * sum(a * b for a, b in zip(u, w)) for w in vectors] for u in vectors]


TOKS = X[0].tolist()


def test_sclip_csa_is_sum_of_query_and_key_softmaxes_with_residual_and_ffn():
    qq = softmax_rows(gram(TOKS, 1))  # q = z
    kk = softmax_rows(gram(TOKS, 4))  # k = 2z: k.k = 4 z.z
    weights = [[a + b for a, b in zip(r1, r2)] for r1, r2 in zip(qq, kk)]  # rows sum to 2, as published
    got = changed_last_block(OneHeadBlock(), X, "csa", residual=True, ffn=True)
    torch.testing.assert_close(got, by_hand(weights, residual=True, ffn=True))


def test_clearclip_is_query_query_attention_without_residual_or_ffn():
    weights = softmax_rows(gram(TOKS, 1))
    got = changed_last_block(OneHeadBlock(), X, "qq", residual=False, ffn=False)
    torch.testing.assert_close(got, by_hand(weights, residual=False, ffn=False))


def test_maskclip_is_the_value_path_plus_residual_and_ffn():
    identity = [[1.0 if i == j else 0.0 for j in range(3)] for i in range(3)]
    got = changed_last_block(OneHeadBlock(), X, "value", residual=True, ffn=True)
    torch.testing.assert_close(got, by_hand(identity, residual=True, ffn=True))
    # without residual/FFN (ClearCLIP's re-implementation): 3 * v exactly
    bare = changed_last_block(OneHeadBlock(), X, "value", residual=False, ffn=False)
    torch.testing.assert_close(bare, torch.tensor([[[3.0, 3.0], [3.0, -3.0], [6.0, 0.0]]]))


def test_naclip_adds_a_gaussian_of_grid_distance_to_key_key_logits():
    # tokens: CLS + a 1 x 2 patch grid; Omega = 0 on the CLS row/column, exp(-d^2 / (2 std^2)) between patches
    std = 2.0
    near = math.exp(-1 / (2 * std**2))
    omega = [[0, 0, 0], [0, 1, near], [0, near, 1]]
    logits = [[g + o for g, o in zip(gr, om)] for gr, om in zip(gram(TOKS, 4), omega)]
    got = changed_last_block(OneHeadBlock(), X, "kk_gaussian", residual=False, ffn=False, grid=(1, 2),
                             gaussian_std=std)
    torch.testing.assert_close(got, by_hand(softmax_rows(logits), residual=False, ffn=False))


def test_neighbourhood_bias_on_a_2x2_grid():
    omega = neighbourhood_bias(2, 2, std=1.0)  # patches (0,0) (0,1) (1,0) (1,1) after the CLS token
    a, b = math.exp(-0.5), math.exp(-1.0)  # one step apart, diagonal (d^2 = 2)
    expected = torch.tensor([[0, 0, 0, 0, 0], [0, 1, a, a, b], [0, a, 1, b, a], [0, a, b, 1, a], [0, b, a, a, 1]])
    torch.testing.assert_close(omega, expected.float())


def test_vanilla_kind_equals_the_plain_block(micro_clip):
    block = micro_clip.visual.transformer.resblocks[-1]
    x = torch.randn(2, 5, block.ln_1.normalized_shape[0])
    ours = changed_last_block(block, x, "qk", residual=True, ffn=True)
    plain, _ = block_forward(block, x)
    torch.testing.assert_close(ours, plain, rtol=1e-5, atol=1e-5)


def test_attention_rows_are_distributions():
    q, k = torch.randn(1, 2, 6, 4), torch.randn(1, 2, 6, 4)
    for kind, total in (("qq", 1.0), ("csa", 2.0), ("qk", 1.0)):
        torch.testing.assert_close(attention_weights(kind, q, k).sum(-1), torch.full((1, 2, 6), total))
    with pytest.raises(ValueError, match="grid"):
        attention_weights("kk_gaussian", q, k)


@pytest.mark.parametrize("kind,residual,ffn,std", [("value", True, True, None), ("csa", True, True, None),
                                                   ("qq", False, False, None), ("kk_gaussian", False, False, 5.0)])
def test_dense_embeddings_shapes_micro(micro_clip, kind, residual, ffn, std):
    images = torch.randn(2, 3, 48, 80)  # non-square: a 3 x 5 grid for patch 16
    feats = dense_embeddings(micro_clip.visual, images, LastBlock(kind, residual, ffn, std))
    assert feats.shape == (2, micro_clip.model.text_projection.shape[1], 3, 5)
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(2, 3, 5))


def test_dense_embeddings_real_vitb16_at_224(vitb16_clip):
    block = LastBlock("kk_gaussian", False, False, 5.0)
    feats = dense_embeddings(vitb16_clip.visual, torch.randn(1, 3, 224, 224), block)
    assert feats.shape == (1, 512, 14, 14) and torch.isfinite(feats).all()
