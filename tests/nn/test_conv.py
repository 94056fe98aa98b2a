import pytest
import torch
import torch.nn.functional as F

from pinsage.nn import PinSageConv, aggregate, segment_softmax
from tests.helpers import assert_shape

AGGREGATORS = ["importance", "mean", "max", "attention"]

# 6 sources, 4 destinations (src[:4] are the destinations); dst 3 has no edges.
SRC = [4, 5, 1, 0, 5, 2, 3]
DST = [0, 0, 0, 1, 1, 2, 2]
NUM_SRC, NUM_DST = 6, 4


def _block(dtype=torch.float32):
    edge_index = torch.tensor([SRC, DST])
    raw = torch.tensor([3.0, 1.0, 1.0, 2.0, 2.0, 1.0, 4.0], dtype=dtype)
    total = torch.zeros(NUM_DST, dtype=dtype).index_add_(0, edge_index[1], raw)
    return edge_index, raw / total[edge_index[1]]  # alpha sums to 1 per dst


def _reference_aggregate(messages, edge_weight, kind):
    """Per-destination loops over plain tensors."""
    out = []
    for u in range(NUM_DST):
        edges = [e for e, d in enumerate(DST) if d == u]
        if not edges:
            out.append(torch.zeros(messages.shape[-1], dtype=messages.dtype))
            continue
        msgs = torch.stack([messages[SRC[e]] for e in edges])  # (K, [H,] C)
        if kind == "importance":
            out.append(sum(edge_weight[e] * messages[SRC[e]] for e in edges))
        elif kind == "mean":
            out.append(msgs.mean(0))
        elif kind == "max":
            out.append(msgs.max(0).values)
        else:
            scores = torch.stack([edge_weight[e] for e in edges])  # (K, H)
            coef = torch.exp(scores) / torch.exp(scores).sum(0)  # softmax over K
            out.append((coef.unsqueeze(2) * msgs).sum(0).mean(0))  # heads averaged
    return torch.stack(out)


@pytest.mark.parametrize("kind", AGGREGATORS)
def test_aggregate_matches_loops(kind):
    torch.manual_seed(0)
    edge_index, alpha = _block()
    if kind == "attention":
        messages, weight = torch.rand(NUM_SRC, 2, 5), torch.randn(len(SRC), 2)
    else:
        messages, weight = torch.rand(NUM_SRC, 5), alpha
    out = aggregate(messages, edge_index, weight, NUM_DST, kind)
    assert_shape(out, (NUM_DST, 5))
    torch.testing.assert_close(out, _reference_aggregate(messages, weight, kind))
    assert torch.equal(out[3], torch.zeros(5))  # no incoming edges


def test_aggregate_mean_and_max_ignore_weights():
    edge_index, _ = _block()
    messages = torch.rand(NUM_SRC, 3)
    for kind in ("mean", "max"):
        torch.testing.assert_close(
            aggregate(messages, edge_index, None, NUM_DST, kind),
            aggregate(messages, edge_index, torch.rand(len(SRC)), NUM_DST, kind),
        )


def test_aggregate_unknown_kind():
    edge_index, alpha = _block()
    with pytest.raises(ValueError, match="unknown aggregator"):
        aggregate(torch.rand(NUM_SRC, 3), edge_index, alpha, NUM_DST, "sum")


def test_segment_softmax_is_stable_and_sums_to_one():
    index = torch.tensor(DST)
    scores = torch.tensor([[1e4], [1e4 - 1], [-1e4], [0.0], [5.0], [-3e4], [-3e4]])
    coef = segment_softmax(scores, index, NUM_DST)
    assert torch.isfinite(coef).all()
    sums = torch.zeros(NUM_DST, 1).index_add_(0, index, coef)
    torch.testing.assert_close(sums[:3], torch.ones(3, 1))
    torch.testing.assert_close(coef[5:], torch.full((2, 1), 0.5))


def _reference_conv(conv, h_src, h_dst, edge_index, alpha):
    """The layer written out from its parameters, aggregation with loops."""
    pre = h_src @ conv.lin_msg.weight.T + conv.lin_msg.bias
    if conv.aggregator == "attention":
        pre = pre.view(NUM_SRC, conv.heads, conv.hidden_dim)
        score_src = (pre * conv.att_src).sum(-1)  # (N_src, H)
        score_dst = h_dst @ conv.lin_att_dst.weight.T  # (N_dst, H)
        weight = F.leaky_relu(score_src[edge_index[0]] + score_dst[edge_index[1]], 0.2)
    else:
        weight = alpha
    n = _reference_aggregate(pre.relu(), weight, conv.aggregator)
    z = (torch.cat([h_dst, n], 1) @ conv.lin_out.weight.T + conv.lin_out.bias).relu()
    norm = z.norm(dim=1, keepdim=True)
    return torch.where(norm > 0, z / norm.clamp_min(1e-30), z)


@pytest.mark.parametrize("kind", AGGREGATORS)
def test_conv_matches_reference(kind):
    torch.manual_seed(1)
    heads = 3 if kind == "attention" else 1
    conv = PinSageConv(4, 6, hidden_dim=5, aggregator=kind, heads=heads)
    edge_index, alpha = _block()
    h_src = torch.randn(NUM_SRC, 4)
    out = conv(h_src, h_src[:NUM_DST], edge_index, alpha)
    assert_shape(out, (NUM_DST, 6))
    expected = _reference_conv(conv, h_src, h_src[:NUM_DST], edge_index, alpha)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("kind", AGGREGATORS)
def test_conv_output_is_unit_norm(kind):
    torch.manual_seed(2)
    conv = PinSageConv(4, 8, aggregator=kind)
    edge_index, alpha = _block()
    h_src = torch.randn(NUM_SRC, 4)
    out = conv(h_src, h_src[:NUM_DST], edge_index, alpha)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(NUM_DST))


def test_conv_zero_output_is_guarded():
    conv = PinSageConv(4, 3)
    with torch.no_grad():
        conv.lin_out.weight.zero_()
        conv.lin_out.bias.fill_(-1.0)  # ReLU(...) = 0 everywhere
    edge_index, alpha = _block()
    h_src = torch.randn(NUM_SRC, 4)
    out = conv(h_src, h_src[:NUM_DST], edge_index, alpha)
    assert torch.equal(out, torch.zeros(NUM_DST, 3))


def test_conv_accepts_other_dst_width():
    conv = PinSageConv(4, 6, hidden_dim=5, aggregator="attention", heads=2, dst_dim=7)
    edge_index, alpha = _block()
    out = conv(torch.randn(NUM_SRC, 4), torch.randn(NUM_DST, 7), edge_index, alpha)
    assert_shape(out, (NUM_DST, 6))


@pytest.mark.parametrize("kind", AGGREGATORS)
def test_conv_gradcheck(kind):
    torch.manual_seed(3)
    heads = 2 if kind == "attention" else 1
    conv = PinSageConv(3, 4, hidden_dim=3, aggregator=kind, heads=heads).double()
    edge_index, alpha = _block(torch.float64)
    h_src = torch.randn(NUM_SRC, 3, dtype=torch.float64, requires_grad=True)
    h_dst = torch.randn(NUM_DST, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda s, d: conv(s, d, edge_index, alpha), (h_src, h_dst)
    )
    conv(h_src, h_dst, edge_index, alpha).sum().backward()
    for name, p in conv.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("kind", AGGREGATORS)
def test_reset_parameters_reinitialises(kind):
    conv = PinSageConv(4, 6, aggregator=kind, heads=2 if kind == "attention" else 1)
    with torch.no_grad():
        for p in conv.parameters():
            p.fill_(0.5)
    torch.manual_seed(4)
    conv.reset_parameters()
    first = [p.detach().clone() for p in conv.parameters()]
    assert all(not torch.all(p == 0.5) for p in first)
    torch.manual_seed(4)
    conv.reset_parameters()
    for a, b in zip(first, conv.parameters(), strict=True):
        assert torch.equal(a, b)


def test_dropout_only_in_training():
    torch.manual_seed(5)
    conv = PinSageConv(4, 6, dropout=0.5)
    edge_index, alpha = _block()
    h_src = torch.randn(NUM_SRC, 4)
    conv.eval()
    a = conv(h_src, h_src[:NUM_DST], edge_index, alpha)
    assert torch.equal(a, conv(h_src, h_src[:NUM_DST], edge_index, alpha))
    conv.train()
    assert not torch.allclose(a, conv(h_src, h_src[:NUM_DST], edge_index, alpha))


def test_repr_and_bad_arguments():
    text = repr(PinSageConv(4, 6, 5, aggregator="attention", heads=2, dst_dim=3))
    assert text == (
        "PinSageConv(4, 6, hidden_dim=5, aggregator='attention', heads=2, dst_dim=3)"
    )
    assert repr(PinSageConv(4, 6)) == (
        "PinSageConv(4, 6, hidden_dim=6, aggregator='importance')"
    )
    with pytest.raises(ValueError, match="unknown aggregator"):
        PinSageConv(4, 6, aggregator="sum")
    with pytest.raises(ValueError, match="heads"):
        PinSageConv(4, 6, aggregator="mean", heads=2)
