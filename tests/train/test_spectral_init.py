from dataclasses import replace

import numpy as np
import torch

from pinsage.features import FeatureStore
from pinsage.graph import load_graph
from pinsage.run import build_model, load_checkpoint, spectral_id_init
from pinsage.train import train
from tests.helpers import tiny_config


def dense_normalized(graph) -> np.ndarray:
    r = np.zeros((graph.num_contexts, graph.num_items))
    csr = graph.csr
    for u in range(graph.num_contexts):
        r[u, csr.context_indices[csr.context_indptr[u] : csr.context_indptr[u + 1]]] = 1
    du, di = r.sum(1), r.sum(0)
    return r / np.sqrt(np.outer(np.maximum(du, 1), np.maximum(di, 1)))


def test_spectral_rows_span_the_top_singular_vectors(id_graph_dir):
    graph = load_graph(id_graph_dir)
    cfg = tiny_config()
    store = FeatureStore.from_graph(graph, text_buckets=512)
    torch.manual_seed(0)
    model = build_model(cfg, graph, store)
    random_norm = model.projector.emb_id.weight.norm(dim=1).mean()
    spectral_id_init(model, graph, seed=0)
    emb = model.projector.emb_id.weight.detach().double().numpy()  # (I, 16)
    _, s, vt = np.linalg.svd(dense_normalized(graph))
    k = emb.shape[1]
    want = (vt[:k].T * s[:k]) @ vt[:k]  # V S V^T: the rows' Gram matrix, sign-free
    scale = (emb @ emb.T).trace() / want.trace()
    np.testing.assert_allclose(emb @ emb.T, scale * want, atol=1e-5)
    # The random initialisation's scale: the layers above see inputs of one size.
    assert abs(np.linalg.norm(emb, axis=1).mean() - random_norm.item()) < 1e-4


def test_training_starts_from_the_spectrum_and_resumes_exactly(id_graph_dir, tmp_path):
    base = tiny_config(epochs=1, steps_per_epoch=2, checkpoint_every=1)
    cfg = replace(base, model=replace(base.model, id_init="spectral"))
    train(cfg, id_graph_dir, tmp_path / "a")
    train(cfg, id_graph_dir, tmp_path / "b", until_step=1)
    train(cfg, id_graph_dir, tmp_path / "b", resume=True)
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    for name, tensor in a["model"].items():
        torch.testing.assert_close(tensor, b["model"][name], rtol=0, atol=0)
    plain = tiny_config(epochs=1, steps_per_epoch=2)
    plain = replace(plain, model=replace(plain.model, id_init="normal"))
    train(plain, id_graph_dir, tmp_path / "c")
    key = "projector.emb_id.weight"
    c = load_checkpoint(tmp_path / "c")
    assert not torch.allclose(a["model"][key], c["model"][key])
