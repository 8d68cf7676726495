"""Mutants of ``sdpa_varlen`` and ``paged_attention``, each one real bug report's mechanism.

Sources are ``owner/repo#number`` threads (docs/real-bugs.md rows 8, 22, 30, 34,
50–55, 65 and the threads named below). Each mutant is ``_base_ragged`` with one
piece replaced; ``TRIGGERS`` holds an input on which each bug shows.
"""

from __future__ import annotations

import inspect
import itertools
from dataclasses import replace

import numpy as np

from . import _base_ragged as base
from ._base import STEPS
from .op_bugs import op_variant
from .triggers import Trigger

HOOKS = ("split", "offset_of", "pages", "count", "steps", "heads_of_lse", "use_window",
         "slots")


def _signed(op: str):
    """Give a mutant the op's documented signature (the base's, without its hooks): adapters
    are bound by the parameters they accept, and these pass them on as **options."""
    signature = inspect.signature(getattr(base, op))
    public = signature.replace(parameters=[p for p in signature.parameters.values()
                                           if p.name not in HOOKS])

    def sign(fn):
        fn.__signature__ = public
        return fn

    return sign


# --- sdpa_varlen ------------------------------------------------------------------


@_signed("sdpa_varlen")
def _varlen_ignores_cu_seqlens(query, key, value, cu_seqlens_q, cu_seqlens_k, **options):
    """cu_seqlens ignored: the whole pack attends as one sequence (keys leak across sequences).

    Source: Tencent-Hunyuan/HunyuanVideo#310 (vanilla attention path ignored cu_seqlens: no
    block-diagonal mask, cross-segment leakage).
    """
    return base.sdpa_varlen(query, key, value, cu_seqlens_q, cu_seqlens_k, **options,
                            split=lambda cu_q, cu_k: [(slice(0, cu_q[-1]), slice(0, cu_k[-1]))])


@_signed("sdpa_varlen")
def _varlen_splits_first_only(query, key, value, cu_seqlens_q, cu_seqlens_k, **options):
    """Only the first boundary is honoured: sequence 0 alone, all later sequences as one.

    Source: Tencent-Hunyuan/HunyuanVideo#310 (torch path split only at cu_seqlens[1], right
    for batch 1 only).
    """
    def first_split(cu_q, cu_k):
        return [(slice(0, cu_q[1]), slice(0, cu_k[1])),
                (slice(cu_q[1], cu_q[-1]), slice(cu_k[1], cu_k[-1]))]

    return base.sdpa_varlen(query, key, value, cu_seqlens_q, cu_seqlens_k, **options,
                            split=first_split)


@_signed("sdpa_varlen")
def _varlen_offsets_as_lengths(query, key, value, cu_seqlens_q, cu_seqlens_k, **options):
    """cu_seqlens entries read as lengths: sequence b spans cu[b+1] rows from its start.

    Source: vllm-project/vllm-ascend#2005 (cu_seqlens built from repeated lengths instead of
    a cumulative sum, "completely violates the definition of cu_seqlens").
    """
    def as_lengths(cu_q, cu_k):
        def spans(cu):
            starts = np.minimum(np.concatenate([[0], np.cumsum(cu[1:])]), cu[-1])
            return [slice(int(a), int(b)) for a, b in itertools.pairwise(starts)]

        return list(zip(spans(cu_q), spans(cu_k), strict=True))

    return base.sdpa_varlen(query, key, value, cu_seqlens_q, cu_seqlens_k, **options,
                            split=as_lengths)


@_signed("sdpa_varlen")
def _varlen_causal_dropped(query, key, value, cu_seqlens_q, cu_seqlens_k, *, is_causal=False,
                           **options):
    """Block-diagonal causal mask loses its causal part: each sequence attends bidirectionally.

    Source: facebookresearch/xformers#1185 (BlockDiagonalCausalMask.to(...) became a plain
    block-diagonal mask).
    """
    return base.sdpa_varlen(query, key, value, cu_seqlens_q, cu_seqlens_k, **options)


@_signed("sdpa_varlen")
def _varlen_one_causal_offset(query, key, value, cu_seqlens_q, cu_seqlens_k, **options):
    """One bottom-right causal diagonal, max(Lk) − max(Lq), for every sequence.

    Source: ROCm/rocm-libraries#10999 (varlen + causal_bottom_right: DIAG_OFF from the padded
    maxima, not per sequence: "silently wrong numerics").
    """
    def global_offset(lq, lk, alignment, lens_q, lens_k):
        return int(max(lens_k) - max(lens_q)) if alignment == "bottom_right" else 0

    return base.sdpa_varlen(query, key, value, cu_seqlens_q, cu_seqlens_k, **options,
                            offset_of=global_offset)


@_signed("sdpa_varlen")
def _varlen_keys_at_query_offsets(query, key, value, cu_seqlens_q, cu_seqlens_k, **options):
    """Keys of sequence b read from row cu_seqlens_q[b]: the query offsets reused for the keys.

    Right for the first sequence and wherever the two packs line up (self-attention), wrong
    for a later sequence once some earlier one has Lq ≠ Lk: its result depends on its place in
    the pack. Source: vllm-project/vllm-omni#5865 (one side's packing indices applied to the
    other side of a cross-attention varlen call: rows misaligned once batch ≥ 2).
    """
    def at_query_offsets(cu_q, cu_k):
        return [(slice(cu_q[b], cu_q[b + 1]), slice(cu_q[b], cu_q[b] + cu_k[b + 1] - cu_k[b]))
                for b in range(len(cu_q) - 1)]

    return base.sdpa_varlen(query, key, value, cu_seqlens_q, cu_seqlens_k, **options,
                            split=at_query_offsets)


# --- paged_attention ----------------------------------------------------------------


@_signed("paged_attention")
def _paged_last_page_unbounded(query, key_pages, value_pages, block_table, seq_lens, **options):
    """Last page read in full: the slots past seq_len enter the softmax.

    Source: flashinfer-ai/flashinfer#3716 (padding KV lanes used when is_causal=False);
    pytorch/pytorch#160861 (paged flex decoding without kv_idx < kv_len);
    tenstorrent/tt-metal#41215 (slots past cur_pos not masked).
    """
    return base.paged_attention(query, key_pages, value_pages, block_table, seq_lens, **options,
                                count=lambda n, page: -(-n // page) * page)


@_signed("paged_attention")
def _paged_extra_page_at_boundary(query, key_pages, value_pages, block_table, seq_lens,
                                  **options):
    """At an exact page multiple one more page is read: effective length seq_len + page_size.

    Source: pegainfer-project/pegainfer#291 (page count from the allocated table, one page
    past the sequence at block boundaries).
    """
    def one_more(row, n, page, b, table):
        need = -(-n // page) + (1 if n and n % page == 0 else 0)
        return np.asarray(row[:need], np.int64)

    def count(n, page):
        return n + page if n and n % page == 0 else n

    return base.paged_attention(query, key_pages, value_pages, block_table, seq_lens, **options,
                                pages=one_more, count=count)


@_signed("paged_attention")
def _paged_drops_full_last_page(query, key_pages, value_pages, block_table, seq_lens,
                                **options):
    """Last page holds seq_len % page_size keys: 0 at an exact multiple, a whole page lost.

    Source: Wenyueh/MinivLLM#76 (last_block_num_tokens = 0 when the length is a multiple of
    block_size).
    """
    return base.paged_attention(query, key_pages, value_pages, block_table, seq_lens, **options,
                                count=lambda n, page: n - page if n and n % page == 0 else n)


@_signed("paged_attention")
def _paged_block_table_ignored(query, key_pages, value_pages, block_table, seq_lens,
                               **options):
    """Block table ignored: each sequence's pages assumed to follow the previous one's in the pool.

    Source: golang-design/accel#10 (Pages accepted on prefill, ignored: cache read as if
    contiguous).
    """
    def contiguous(row, n, page, b, table):
        counts = [-(-int(m) // page) for m in seq_lens]
        start = sum(counts[:b])
        return np.arange(start, start + counts[b])

    return base.paged_attention(query, key_pages, value_pages, block_table, seq_lens, **options,
                                pages=contiguous)


@_signed("paged_attention")
def _paged_adjacent_blocks(query, key_pages, value_pages, block_table, seq_lens, **options):
    """Only the first block-table entry read; later pages assumed physically adjacent to it.

    Source: hw-native-sys/pypto#470 (two logically consecutive KV blocks assumed adjacent in
    the block table; found by review).
    """
    def adjacent(row, n, page, b, table):
        return (int(row[0]) + np.arange(-(-n // page))) % key_pages.shape[0]

    return base.paged_attention(query, key_pages, value_pages, block_table, seq_lens, **options,
                                pages=adjacent)


@_signed("paged_attention")
def _paged_window_ignored(query, key_pages, value_pages, block_table, seq_lens, **options):
    """Paged decode ignores the sliding window: the whole context is attended.

    Source: EricLBuehler/mistral.rs#2094 (Gemma PagedAttention decode kernel ignores the
    sliding window).
    """
    return base.paged_attention(query, key_pages, value_pages, block_table, seq_lens, **options,
                                use_window=False)


@_signed("paged_attention")
def _paged_masked_tail_nan(query, key_pages, value_pages, block_table, seq_lens, **options):
    """Last page read whole, the slots past seq_len masked to weight 0: 0 · NaN leaks into P·V.

    Source: Dao-AILab/flash-attention#2374 (FA3/FA4 load the whole V tile: P = 0 past
    seqused_k, but the PV product computes 0 * NaN = NaN); vllm-project/vllm#936 (the paged
    kernel zeroes out-of-context V lanes for this reason).
    """
    return base.paged_attention(query, key_pages, value_pages, block_table, seq_lens, **options,
                                slots=lambda n, page: -(-n // page) * page)


@_signed("paged_attention")
def _paged_pool_read_as_packed(query, key_pages, value_pages, block_table, seq_lens, *,
                               page_layout="NHD", return_lse=False, **options):
    """Pool read as one packed varlen buffer: sequence b's keys from slot cu_seqlens_k[b] on.

    The block table is ignored: right only when every sequence's pages are the pool's next
    ones and all but the last are full. Source: tanishqkumar/ssd#22 (prefix-cache-hit prefill
    passed the paged k_cache/v_cache to flash_attn_varlen_func with cu_seqlens_k, reading the
    wrong KV rows; fixed by flash_attn_with_kvcache with the page table).
    """
    if page_layout == "HND":
        key_pages, value_pages = np.swapaxes(key_pages, 1, 2), np.swapaxes(value_pages, 1, 2)
    batch, lq = query.shape[:2]
    cu_k = np.concatenate([[0], np.cumsum(seq_lens)]).astype(np.int64)
    cu_q = np.arange(batch + 1) * lq
    out, lse = base.sdpa_varlen(
        query.reshape(batch * lq, *query.shape[2:]),
        key_pages.reshape(-1, *key_pages.shape[2:]),
        value_pages.reshape(-1, *value_pages.shape[2:]),
        cu_q, cu_k, **{"causal_alignment": "bottom_right", **options}, return_lse=True)
    out = out.reshape(batch, lq, *out.shape[1:])
    lse = np.swapaxes(lse.reshape(lse.shape[0], batch, lq), 0, 1)
    return (out, lse) if return_lse else out


def _tile_heads(x, heads_q):
    return np.tile(x, (heads_q // x.shape[-3], 1, 1))


@_signed("paged_attention")
def _paged_gqa_tile(query, key_pages, value_pages, block_table, seq_lens, **options):
    """GQA inside pages maps query head h to kv head h mod Hk instead of h // (Hq/Hk).

    Source: flashinfer-ai/flashinfer#1148 (query-head index within a GQA group remapped
    wrongly in the paged kernels).
    """
    return base.paged_attention(query, key_pages, value_pages, block_table, seq_lens, **options,
                                steps=replace(STEPS, expand_kv=_tile_heads))


@_signed("paged_attention")
def _paged_lse_group_first_head(query, key_pages, value_pages, block_table, seq_lens,
                                **options):
    """Returned lse of every query head in a GQA group is the group's first head's.

    Source: vllm-project/flash-attention#87 (LSE wrong in the split-KV path when GQA query
    groups are swapped into the sequence axis).
    """
    def first_of_group(lse, group):
        return np.repeat(lse[::group], group, axis=0)

    return base.paged_attention(query, key_pages, value_pages, block_table, seq_lens, **options,
                                heads_of_lse=first_of_group)


MUTANTS = {
    "varlen_ignores_cu_seqlens": op_variant("varlen_ignores_cu_seqlens", "sdpa_varlen",
                                            _varlen_ignores_cu_seqlens),
    "varlen_splits_first_only": op_variant("varlen_splits_first_only", "sdpa_varlen",
                                           _varlen_splits_first_only),
    "varlen_offsets_as_lengths": op_variant("varlen_offsets_as_lengths", "sdpa_varlen",
                                            _varlen_offsets_as_lengths),
    "varlen_causal_dropped": op_variant("varlen_causal_dropped", "sdpa_varlen",
                                        _varlen_causal_dropped),
    "varlen_one_causal_offset": op_variant("varlen_one_causal_offset", "sdpa_varlen",
                                           _varlen_one_causal_offset),
    "varlen_keys_at_query_offsets": op_variant("varlen_keys_at_query_offsets", "sdpa_varlen",
                                               _varlen_keys_at_query_offsets),
    "paged_last_page_unbounded": op_variant("paged_last_page_unbounded", "paged_attention",
                                            _paged_last_page_unbounded),
    "paged_extra_page_at_boundary": op_variant("paged_extra_page_at_boundary",
                                               "paged_attention", _paged_extra_page_at_boundary),
    "paged_drops_full_last_page": op_variant("paged_drops_full_last_page", "paged_attention",
                                             _paged_drops_full_last_page),
    "paged_block_table_ignored": op_variant("paged_block_table_ignored", "paged_attention",
                                            _paged_block_table_ignored),
    "paged_adjacent_blocks": op_variant("paged_adjacent_blocks", "paged_attention",
                                        _paged_adjacent_blocks),
    "paged_window_ignored": op_variant("paged_window_ignored", "paged_attention",
                                       _paged_window_ignored),
    "paged_gqa_tile": op_variant("paged_gqa_tile", "paged_attention", _paged_gqa_tile),
    "paged_lse_group_first_head": op_variant("paged_lse_group_first_head", "paged_attention",
                                             _paged_lse_group_first_head),
    "paged_masked_tail_nan": op_variant("paged_masked_tail_nan", "paged_attention",
                                        _paged_masked_tail_nan),
    "paged_pool_read_as_packed": op_variant("paged_pool_read_as_packed", "paged_attention",
                                            _paged_pool_read_as_packed),
}

# measured (profile ci): the properties packing, page_permutation and unused_slots run first
PAGES = ("page_permutation", "unused_slots", "numeric")
CATCHES = {
    **dict.fromkeys(MUTANTS, ("numeric",)),
    **dict.fromkeys(("varlen_ignores_cu_seqlens", "varlen_splits_first_only",
                     "varlen_offsets_as_lengths", "varlen_one_causal_offset",
                     "varlen_keys_at_query_offsets"), ("packing", "numeric")),
    **dict.fromkeys(("paged_last_page_unbounded", "paged_masked_tail_nan"),
                    ("unused_slots", "numeric")),
    **dict.fromkeys(("paged_extra_page_at_boundary", "paged_block_table_ignored",
                     "paged_adjacent_blocks", "paged_pool_read_as_packed"), PAGES),
}

# --- triggers ------------------------------------------------------------------------


def _varlen(lens_q, lens_k, heads=(2, 2), seed=0, **options) -> Trigger:
    rng = np.random.default_rng(seed)
    hq, hk = heads
    cu = [np.concatenate([[0], np.cumsum(n)]).astype(np.int32) for n in (lens_q, lens_k)]
    return Trigger("sdpa_varlen", {
        "query": rng.standard_normal((sum(lens_q), hq, 8)),
        "key": rng.standard_normal((sum(lens_k), hk, 8)),
        "value": rng.standard_normal((sum(lens_k), hk, 8)),
        "cu_seqlens_q": cu[0], "cu_seqlens_k": cu[1], **options})


def _paged(lens, page=4, lq=1, heads=(4, 2), seed=1, shuffle=True, **options) -> Trigger:
    """Pages in shuffled pool order, NaN past each seq_len and in two spare pages."""
    rng = np.random.default_rng(seed)
    hq, hk = heads
    counts = [-(-n // page) for n in lens]
    num = sum(counts) + 2
    ids = rng.permutation(num) if shuffle else np.arange(num)
    table = np.full((len(lens), max(counts) + 2), -1, np.int32)
    kp, vp = rng.standard_normal((2, num, page, hk, 8))
    read = np.zeros((num, page), bool)
    nxt = 0
    for b, n in enumerate(lens):
        table[b, :counts[b]] = ids[nxt:nxt + counts[b]]
        nxt += counts[b]
        for t in range(n):
            read[table[b, t // page], t % page] = True
    kp[~read], vp[~read] = np.nan, np.nan
    return Trigger("paged_attention", {
        "query": rng.standard_normal((len(lens), lq, hq, 8)), "key_pages": kp,
        "value_pages": vp, "block_table": table, "seq_lens": np.array(lens, np.int32),
        "enable_gqa": hq != hk, **options})


TRIGGERS = {
    "varlen_ignores_cu_seqlens": lambda: _varlen([3, 4], [3, 4]),
    "varlen_splits_first_only": lambda: _varlen([2, 3, 4], [2, 3, 4]),
    "varlen_offsets_as_lengths": lambda: _varlen([2, 3, 4], [2, 3, 4]),
    "varlen_causal_dropped": lambda: _varlen([3, 4], [3, 4], is_causal=True),
    "varlen_one_causal_offset": lambda: _varlen([2, 1], [5, 6], is_causal=True,
                                                causal_alignment="bottom_right"),
    "varlen_keys_at_query_offsets": lambda: _varlen([2, 3, 4], [4, 1, 3]),
    "paged_last_page_unbounded": lambda: _paged([5, 3]),
    "paged_extra_page_at_boundary": lambda: _paged([8, 3]),
    "paged_drops_full_last_page": lambda: _paged([8, 3]),
    "paged_block_table_ignored": lambda: _paged([5, 7]),
    "paged_adjacent_blocks": lambda: _paged([9, 7]),
    "paged_window_ignored": lambda: _paged([12, 7], window=(3, 0)),
    "paged_gqa_tile": lambda: _paged([5, 7]),
    "paged_lse_group_first_head": lambda: _paged([5, 7], return_lse=True),
    "paged_masked_tail_nan": lambda: _paged([5, 3]),
    "paged_pool_read_as_packed": lambda: _paged([5, 7]),
}
