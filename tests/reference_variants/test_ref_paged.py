"""reference.paged_attention against dense sdpa over each sequence's contiguous keys, with the
pages laid out here slot by slot (shuffled, shared, padded, garbage past seq_len), and
against torch's scaled_dot_product_attention on the same contiguous keys."""

from __future__ import annotations

import numpy as np
import pytest

from reference.paged import paged_attention
from reference.scaled_dot_product import sdpa

ATOL = 1e-12


def contiguous(seed, lens, lq, heads=(4, 2), dim=8, dim_v=6):
    """Per-sequence keys/values (list of (L_b, Hk, D)) and the queries (B, Lq, Hq, E)."""
    rng = np.random.default_rng(seed)
    hq, hk = heads
    keys = [rng.standard_normal((n, hk, dim)) for n in lens]
    values = [rng.standard_normal((n, hk, dim_v)) for n in lens]
    return rng.standard_normal((len(lens), lq, hq, dim)), keys, values


def page_out(keys, values, page_size, *, seed=0, spare=3, garbage=np.nan, width=None):
    """Pages filled one slot at a time in a shuffled order, garbage everywhere else, and the
    block table (padding −1 past each sequence's last page)."""
    rng = np.random.default_rng(seed)
    counts = [-(-len(k) // page_size) for k in keys]
    num_pages = sum(counts) + spare
    order = rng.permutation(num_pages)
    hk, dim, dim_v = keys[0].shape[1], keys[0].shape[2], values[0].shape[2]
    key_pages = np.full((num_pages, page_size, hk, dim), garbage)
    value_pages = np.full((num_pages, page_size, hk, dim_v), garbage)
    table = np.full((len(keys), width or max(max(counts), 1) + 1), -1, dtype=np.int32)
    nxt = 0
    for b, (k, v) in enumerate(zip(keys, values, strict=True)):
        for p in range(counts[b]):
            table[b, p] = order[nxt]
            nxt += 1
        for t in range(len(k)):
            key_pages[table[b, t // page_size], t % page_size] = k[t]
            value_pages[table[b, t // page_size], t % page_size] = v[t]
    return key_pages, value_pages, table


def dense(query, keys, values, **kwargs):
    outs = []
    for b in range(len(keys)):
        out = sdpa(np.swapaxes(query[b], 0, 1), np.swapaxes(keys[b], 0, 1),
                   np.swapaxes(values[b], 0, 1), enable_gqa=True, **kwargs)
        outs.append(np.swapaxes(out, 0, 1))
    return np.stack(outs)


LENS = [1, 16, 17, 33, 0, 5]


@pytest.mark.parametrize("page_size", [1, 3, 16, 128])
@pytest.mark.parametrize("lq, causal", [(1, False), (1, True), (4, True), (3, False)])
def test_paged_equals_dense_over_gathered_keys(page_size, lq, causal):
    lens = [max(n, lq) if causal else n for n in LENS]
    query, keys, values = contiguous(1, lens, lq)
    key_pages, value_pages, table = page_out(keys, values, page_size, seed=page_size)
    out = paged_attention(query, key_pages, value_pages, table, np.array(lens),
                          is_causal=causal, enable_gqa=True)
    expected = dense(query, keys, values, is_causal=causal, causal_alignment="bottom_right")
    assert out.shape == (len(lens), lq, 4, 6) and np.isfinite(out).all()
    np.testing.assert_allclose(out, expected, rtol=0, atol=ATOL)


def test_hnd_layout_and_lse():
    lens = [7, 12]
    query, keys, values = contiguous(2, lens, 2)
    key_pages, value_pages, table = page_out(keys, values, 5)
    nhd, lse = paged_attention(query, key_pages, value_pages, table, np.array(lens),
                               enable_gqa=True, return_lse=True)
    hnd = paged_attention(query, np.swapaxes(key_pages, 1, 2).copy(),
                          np.swapaxes(value_pages, 1, 2).copy(), table, np.array(lens),
                          enable_gqa=True, page_layout="HND")
    np.testing.assert_allclose(hnd, nhd, rtol=0, atol=ATOL)
    _, dense_lse = sdpa(np.swapaxes(query[1], 0, 1), np.swapaxes(keys[1], 0, 1),
                        np.swapaxes(values[1], 0, 1), enable_gqa=True, return_lse=True)
    assert lse.shape == (2, 4, 2)
    np.testing.assert_allclose(lse[1], dense_lse, rtol=0, atol=ATOL)


def test_shared_prefix_pages_and_page_permutation():
    """Two sequences share their first two pages (prefix caching); shuffling the pool and
    renumbering the table changes nothing."""
    rng = np.random.default_rng(3)
    page_size, prefix = 4, 8
    shared_k, shared_v = rng.standard_normal((prefix, 2, 8)), rng.standard_normal((prefix, 2, 6))
    query, tails_k, tails_v = contiguous(4, [3, 6], 1)
    keys = [np.concatenate([shared_k, t]) for t in tails_k]
    values = [np.concatenate([shared_v, t]) for t in tails_v]
    key_pages, value_pages, table = page_out(keys, values, page_size)
    table[1, :2] = table[0, :2]  # sequence 1 reads sequence 0's prefix pages
    lens = np.array([11, 14])
    out = paged_attention(query, key_pages, value_pages, table, lens, enable_gqa=True)
    np.testing.assert_allclose(out, dense(query, keys, values), rtol=0, atol=ATOL)
    perm = rng.permutation(key_pages.shape[0])  # new page p holds old page perm[p]
    renumber = np.argsort(perm)
    moved = paged_attention(query, key_pages[perm], value_pages[perm],
                            np.where(table >= 0, renumber[table], -1), lens, enable_gqa=True)
    np.testing.assert_allclose(moved, out, rtol=0, atol=ATOL)


def test_garbage_past_seq_len_and_padding_entries_are_never_read():
    lens = [5, 9]
    query, keys, values = contiguous(5, lens, 1)
    results = []
    for garbage, pad in ((np.nan, -1), (np.inf, 10**6), (-np.inf, 0), (1e30, 1)):
        key_pages, value_pages, table = page_out(keys, values, 4, garbage=garbage)
        table[table < 0] = pad
        results.append(paged_attention(query, key_pages, value_pages, table, np.array(lens),
                                       enable_gqa=True))
    for r in results:
        np.testing.assert_allclose(r, results[0], rtol=0, atol=0)
    assert np.isfinite(results[0]).all()


def test_empty_sequence_gives_zeros():
    query, keys, values = contiguous(6, [0, 3], 2)
    key_pages, value_pages, table = page_out(keys, values, 2)
    out = paged_attention(query, key_pages, value_pages, table, np.array([0, 3]), enable_gqa=True)
    assert np.all(out[0] == 0) and np.isfinite(out[1]).all()


@pytest.mark.parametrize("table_edit, lens, match", [
    (lambda t: t.__setitem__((0, 0), -1), [5, 9], "outside"),
    (lambda t: t.__setitem__((1, 0), 999), [5, 9], "outside"),
    (lambda t: None, [5, 40], "needs"),
])
def test_bad_tables_raise_one_line(table_edit, lens, match):
    query, keys, values = contiguous(7, [5, 9], 1)
    key_pages, value_pages, table = page_out(keys, values, 4)
    table_edit(table)
    with pytest.raises(ValueError, match=match):
        paged_attention(query, key_pages, value_pages, table, np.array(lens), enable_gqa=True)


def test_decode_256_sequences_memory_is_per_sequence():
    """256 decode rows over up to 2k keys each in pages of 16: a loop of small sdpa calls."""
    rng = np.random.default_rng(8)
    lens = rng.integers(1, 2048, size=256)
    page_size, hk, dim = 16, 2, 16
    counts = -(-lens // page_size)
    num_pages = int(counts.sum())
    key_pages = rng.standard_normal((num_pages, page_size, hk, dim)).astype(np.float32)
    value_pages = rng.standard_normal((num_pages, page_size, hk, dim)).astype(np.float32)
    table = np.full((256, int(counts.max())), -1, np.int32)
    starts = np.concatenate([[0], np.cumsum(counts)])
    for b in range(256):
        table[b, :counts[b]] = np.arange(starts[b], starts[b + 1])[::-1]  # reversed pages
    query = rng.standard_normal((256, 1, 4, dim)).astype(np.float32)
    out = paged_attention(query, key_pages, value_pages, table, lens, enable_gqa=True)
    b = 100
    keys = key_pages[table[b, :counts[b]]].reshape(-1, hk, dim)[:lens[b]]
    vals = value_pages[table[b, :counts[b]]].reshape(-1, hk, dim)[:lens[b]]
    np.testing.assert_allclose(out[b:b + 1], dense(query[b:b + 1], [keys], [vals]),
                               rtol=0, atol=1e-5)


@pytest.mark.torch
@pytest.mark.parametrize("causal", [False, True])
def test_paged_against_torch_sdpa_on_gathered_keys(causal):
    torch = pytest.importorskip("torch")
    bias = pytest.importorskip("torch.nn.attention.bias")
    lens = [6, 17, 9]
    query, keys, values = contiguous(9, lens, 3)
    key_pages, value_pages, table = page_out(keys, values, 4)
    out = paged_attention(query, key_pages, value_pages, table, np.array(lens),
                          is_causal=causal, enable_gqa=True)
    for b, n in enumerate(lens):
        q, k, v = (torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, 1)))
                   for x in (query[b], keys[b], values[b]))
        mask = bias.causal_lower_right(3, n) if causal else None
        expected = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, enable_gqa=True).numpy()
        np.testing.assert_allclose(out[b], np.swapaxes(expected, 0, 1), rtol=0, atol=ATOL)
