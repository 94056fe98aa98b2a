import pytest
import torch
import torch.nn.functional as F

from pinsage.config import SamplerConfig
from pinsage.features import FeatureStore
from pinsage.nn import FeatureProjector, PinSageModel
from pinsage.nn.blocks import Block, ComputationGraph
from pinsage.sampler import context_blocks, item_blocks
from tests.helpers import COLD, assert_shape, write_tiny_graph

SAMPLER = SamplerConfig(num_walks=20, walk_length=2, top_k=3, num_layers=2, seed=0)
DIM, HIDDEN, OUT = 8, 6, 5


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    return write_tiny_graph(tmp_path_factory.mktemp("nn_model"))


@pytest.fixture(scope="module")
def store(graph):
    return FeatureStore.from_graph(graph, text_buckets=64)


def _model(
    graph, store, *, aggregator="importance", id_embedding=False, out_dim=OUT, **kwargs
):
    torch.manual_seed(0)
    projector = FeatureProjector.from_store(store, DIM, id_embedding=id_embedding)
    return PinSageModel(
        projector,
        SAMPLER.num_layers,
        DIM,
        HIDDEN,
        out_dim,
        aggregator,
        heads=2,
        num_contexts=graph.num_contexts,
        **kwargs,
    )


def _items(graph, seeds, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return item_blocks(graph.csr, torch.tensor(seeds), SAMPLER, generator=gen)


def _contexts(graph, seeds, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return context_blocks(graph.csr, torch.tensor(seeds), SAMPLER, generator=gen)


@pytest.mark.parametrize("aggregator", ["importance", "mean", "max", "attention"])
def test_item_and_context_outputs_are_unit_vectors(graph, store, aggregator):
    model = _model(graph, store, aggregator=aggregator, context_id_embedding=True)
    for cg in (_items(graph, [0, 3, COLD, 6]), _contexts(graph, [4, 1, 2])):
        z = model(cg, store.gather(cg.input_nodes))
        assert_shape(z, (cg.seeds.numel(), OUT))
        torch.testing.assert_close(z.norm(dim=1), torch.ones(cg.seeds.numel()))


def test_deterministic_under_manual_seed(graph, store):
    cg = _items(graph, [1, 2, 5])
    features = store.gather(cg.input_nodes)
    a = _model(graph, store)(cg, features)
    b = _model(graph, store)(_items(graph, [1, 2, 5]), features)
    assert torch.equal(a, b)


def test_unnormalised_output(graph, store):
    model = _model(graph, store, normalize_output=False)
    cg = _items(graph, [1, 2, 5])
    z = model(cg, store.gather(cg.input_nodes))
    h, skip = model.convolve(cg, model.projector(store.gather(cg.input_nodes)))
    assert skip is None  # no residual unless asked
    torch.testing.assert_close(z, model.lin_head2(F.relu(model.lin_head1(h))))


def test_forward_is_the_composition_of_its_parts(graph, store):
    model = _model(graph, store, id_embedding=True)
    cg = _items(graph, [0, 8, COLD])
    features = store.gather(cg.input_nodes)
    h = model.projector(features)
    for conv, block in zip(model.convs, cg.blocks, strict=True):
        h = conv(h, h[: block.num_dst], block.edge_index, block.edge_weight)
    z = model.lin_head2(F.relu(model.lin_head1(h)))
    torch.testing.assert_close(model(cg, features), F.normalize(z, dim=1))


@pytest.mark.parametrize("context_id_embedding", [True, False])
def test_context_forward_is_the_composition_of_its_parts(
    graph, store, context_id_embedding
):
    model = _model(graph, store, context_id_embedding=context_id_embedding)
    cg = _contexts(graph, [0, 3])
    top = cg.blocks[-1]
    assert top.dst_is_context
    features = store.gather(cg.input_nodes)
    h = model.projector(features)
    h = model.convs[0](
        h, h[: cg.blocks[0].num_dst], cg.blocks[0].edge_index, cg.blocks[0].edge_weight
    )
    ctx = (
        model.context_embedding(top.dst_nodes)
        if context_id_embedding
        else torch.zeros(2, DIM)
    )
    h = model.context_conv(h, ctx, top.edge_index, top.edge_weight)
    z = F.normalize(model.lin_head2(F.relu(model.lin_head1(h))), dim=1)
    torch.testing.assert_close(model(cg, features), z)
    assert (model.context_embedding is not None) == context_id_embedding


def _randomize_head(model):
    """A residual model's G_2 starts at zero; give it weights so both terms count."""
    with torch.no_grad():
        model.lin_head2.weight.normal_()


def test_residual_starts_as_the_identity_of_its_inputs(graph, store):
    model = _model(graph, store, residual=True, out_dim=DIM)
    assert torch.count_nonzero(model.lin_head2.weight) == 0
    cg = _items(graph, [0, 3, 6])
    features = store.gather(cg.input_nodes)
    h = model.projector(features)
    h1 = model.convs[0](h, h[: cg.blocks[0].num_dst], *_edges(cg.blocks[0]))
    # The top layer's input of each seed is its own first-layer vector.
    want = F.normalize(h1[: cg.seeds.numel()], dim=1)
    torch.testing.assert_close(model(cg, features), want)


def test_residual_context_adds_its_items_pooled_by_importance(graph, store):
    model = _model(graph, store, residual=True, out_dim=DIM)
    _randomize_head(model)
    cg = _contexts(graph, [0, 3])
    top = cg.blocks[-1]
    features = store.gather(cg.input_nodes)
    h = model.projector(features)
    h = model.convs[0](h, h[: cg.blocks[0].num_dst], *_edges(cg.blocks[0]))
    h_ctx = model.context_conv(h, torch.zeros(2, DIM), *_edges(top))
    pooled = torch.zeros(2, DIM)
    for (src, dst), alpha in zip(top.edge_index.T, top.edge_weight, strict=True):
        pooled[dst] += alpha * h[src]  # one edge at a time: the plain sum
    z = model.lin_head2(F.relu(model.lin_head1(h_ctx))) + pooled
    torch.testing.assert_close(model(cg, features), F.normalize(z, dim=1))


def test_residual_needs_out_dim_equal_to_dim(graph, store):
    with pytest.raises(ValueError, match="out_dim == dim"):
        _model(graph, store, residual=True)


def _edges(block):
    return block.edge_index, block.edge_weight


def test_cold_item_without_id_embedding_is_embedded(graph, store):
    model = _model(graph, store)
    cg = _items(graph, [COLD])
    assert cg.blocks[-1].edge_index.shape[1] == 0  # no neighbours at all
    z = model(cg, store.gather(cg.input_nodes))
    torch.testing.assert_close(z.norm(dim=1), torch.ones(1))


def test_gradients_reach_every_used_parameter(graph, store):
    model = _model(graph, store, id_embedding=True, context_id_embedding=True)
    model.train()
    items, contexts = _items(graph, [0, 3, 6]), _contexts(graph, [1, 4])
    z_items = model(items, store.gather(items.input_nodes))
    z_contexts = model(contexts, store.gather(contexts.input_nodes))
    (z_contexts @ z_items.T).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_reset_parameters_and_layer_mismatch(graph, store):
    model = _model(graph, store)
    before = [p.detach().clone() for p in model.parameters()]
    model.reset_parameters()
    assert all(
        not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)
    )
    one_layer = SamplerConfig(num_walks=5, top_k=2, num_layers=1)
    cg = item_blocks(
        graph.csr, torch.tensor([0]), one_layer, generator=torch.Generator()
    )
    with pytest.raises(ValueError, match="2 layers"):
        model(cg, store.gather(cg.input_nodes))


def _without_item_edges(cg):
    """``cg`` with every item destination's neighbourhood emptied."""
    return ComputationGraph(
        [
            b
            if b.dst_is_context
            else Block(b.src_nodes, b.dst_nodes, b.edge_index[:, :0], b.edge_weight[:0])
            for b in cg.blocks
        ]
    )


def test_cold_dropout_drops_neighborhoods_and_ids_in_training_only(graph, store):
    # Every item seen as cold: as if no item had interactions or an ID vector.
    model = _model(graph, store, id_embedding=True, cold_dropout=1.0)
    cg = _items(graph, [0, 3, 6])
    features = store.gather(cg.input_nodes)
    dropped = model.train()(cg, features)
    no_id = torch.ones(cg.input_nodes.numel(), dtype=torch.bool)
    h = model.projector(features, without_id=no_id)
    want = model.head(*model.convolve(_without_item_edges(cg), h))
    torch.testing.assert_close(dropped, want)
    plain = _model(graph, store, id_embedding=True)
    assert not torch.allclose(dropped, plain(cg, features))
    torch.testing.assert_close(model.eval()(cg, features), plain.eval()(cg, features))


def test_cold_dropout_leaves_context_graphs_alone(graph, store):
    model = _model(graph, store, id_embedding=True, cold_dropout=1.0).train()
    plain = _model(graph, store, id_embedding=True).train()
    cg = _contexts(graph, [4, 1, 2])
    features = store.gather(cg.input_nodes)
    torch.testing.assert_close(model(cg, features), plain(cg, features))


def test_cold_dropout_share(graph, store):
    model = _model(graph, store, cold_dropout=0.3).train()
    cg = _items(graph, list(range(9)))
    torch.manual_seed(1)
    drawn = torch.stack([model._drawn_cold(cg) for _ in range(2000)])
    assert drawn.float().mean().item() == pytest.approx(0.3, abs=0.01)


def test_embed_cold_is_the_vector_of_an_item_without_interactions(graph, store):
    # A catalogue-only item, embedded by the plain forward (no neighbours, no ID).
    features_only = _model(graph, store).eval()
    cg = _items(graph, [COLD])
    torch.testing.assert_close(
        features_only.embed_cold(store.gather(torch.tensor([COLD]))),
        features_only(cg, store.gather(cg.input_nodes)),
    )
    # Warm items too: their IDs and neighbourhoods are dropped, as cold_dropout does.
    model = _model(graph, store, id_embedding=True, cold_dropout=1.0)
    cg = _items(graph, [0, 3, 6])
    got = model.eval().embed_cold(store.gather(cg.seeds))
    torch.testing.assert_close(got, model.train()(cg, store.gather(cg.input_nodes)))
    assert not torch.allclose(got, model.eval()(cg, store.gather(cg.input_nodes)))
