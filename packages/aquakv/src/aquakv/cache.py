r"""The AQUA-KV cache for transformers' per-layer Cache API (transformers >= 4.56, 5.x).

Token slots of every layer (the same for all layers and all rows of the batch)::

    [ quantized slots (packed codes + scales of predictor residuals) | recent buffer (model dtype) ]

plus, per row, its attention sinks: the keys and values of its first ``prefix_size`` *positions*,
kept in the model dtype and shown to attention in place of their quantized copy.

* Positions come from the ``position_ids`` transformers passes to the cache (the slot index when
  none are passed), so a left-padded row is un-rotated, quantized and re-rotated exactly as the
  same sequence alone. A row's offset (its number of left pads) is fixed by its first forward.
* Tokens are quantized in chunks of ``buffer_size`` positions aligned to the sink: positions
  ``[prefix + k*B, prefix + (k+1)*B)`` once the row holds all of them, so whether a token is
  quantized depends only on its position and the row's length, never on how the tokens were fed
  or batched. A chunk is written at the start of the next forward (quantized layer by layer: keys
  are un-rotated, predicted from layer L-1's reconstruction of the same tokens, values from
  ``[K_hat_L, V_hat_{L-1}]``, and only the residual is quantized); the forward that completes it
  sees its original keys and values, as before. The slots quantized are the furthest any row has
  completed; a row behind that frontier (left pads are not multiples of B) reads its
  not-yet-complete tokens from the buffer, which starts at the earliest row's frontier (fewer than
  ``buffer_size + prefix_size`` slots apart).
* Reading layer L reconstructs all quantized slots from codes (decode + inverse Hadamard + scale +
  predictor, the fused kernel on CUDA) and re-applies RoPE. Layer L-1's reconstruction is held
  only until layer L has used it, and everything is dropped after the last layer: no dequantized
  copy outlives a forward pass (unless ``keep_dequantized=True``, which trades that memory back
  for speed, off by default).
* :meth:`AquaKVCache.crop` removes tokens not yet quantized (always those of the last forward, as
  assisted decoding needs) and leaves the cache exactly as if it had never seen them; beam search
  reorders rows (``reorder_cache``).

``predictors=None`` gives HIGGS-only (no prediction; the ablation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from aquakv.config import FIRST_LAYER_GRIDS, AquaKVConfig, UnsupportedLayoutError
from aquakv.kernels import quantize_rows
from aquakv.predictors import Predictors
from aquakv.quantizer import HiggsQuantizer, IdentityQuantizer, QRows
from aquakv.rope import RopeTable, rotate, unrotate


def kv_layout(config) -> tuple[int, int, int]:
    """``(num_layers, num_kv_heads, head_dim)`` of a transformers decoder config."""
    config = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    hd = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return config.num_hidden_layers, config.num_key_value_heads, hd


def check_supported(config) -> None:
    types = set(getattr(config, "layer_types", None) or ["full_attention"])
    bad = types - {"full_attention", "sliding_attention"}
    if bad:
        raise UnsupportedLayoutError(
            f"the AQUA-KV cache supports full (and wide sliding-window) attention layers only; this model has {sorted(bad)}"
        )


class _Chunked(CacheLayerMixin):
    """Per-layer storage shared by the AQUA-KV and KIVI caches: a recent buffer and quantized tokens."""

    is_compileable = False
    is_sliding = False
    is_croppable = False

    def __init__(self):
        super().__init__()
        self.buf_k = self.buf_v = None
        self.num_quantized = 0  # slots held in quantized form
        self.num_slots = 0  # slots seen (the attention length before the next forward)

    def lazy_initialization(self, key_states, value_states):
        b, h, _, d = key_states.shape
        e = key_states.new_zeros(b, h, 0, d)
        self.buf_k, self.buf_v = e, e.clone()
        self.device, self.dtype = key_states.device, key_states.dtype
        self.is_initialized = True

    def update(self, *args, **kwargs):
        raise RuntimeError("these layers are updated through their cache")

    @property
    def num_buffer(self) -> int:
        return 0 if self.buf_k is None else self.buf_k.shape[2]

    def get_seq_length(self) -> int:
        return self.num_slots

    def get_mask_sizes(self, query_length, *args) -> tuple[int, int]:
        if not isinstance(query_length, int):  # older transformers passed cache_position
            query_length = query_length.shape[0]
        return self.get_seq_length() + query_length, 0

    def get_max_length(self) -> int:
        return -1

    def _tensors(self):
        return ("buf_k", "buf_v")

    def _map_batch(self, fn) -> None:
        for name in self._tensors():
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, fn(t))

    def reorder_cache(self, beam_idx):
        self._map_batch(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats: int):
        self._map_batch(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices):
        self._map_batch(lambda t: t[indices])

    def crop(self, tokens_to_remove: int):
        if tokens_to_remove:
            raise NotImplementedError(f"cropping is not supported by {type(self).__name__}")

    def reset(self):
        self.__init__()

    def offload(self):
        pass

    def prefetch(self):
        pass

    def nbytes(self) -> dict[str, int]:
        size = lambda t: 0 if t is None else t.numel() * t.element_size()
        return {"quantized": 0, "fp": sum(size(getattr(self, n)) for n in self._tensors())}


class _AquaLayer(_Chunked):
    """One layer of :class:`AquaKVCache`: quantized slots ``[0, num_quantized)``, the buffer
    (slots ``[buf_start, num_slots)``) and each row's sink (its first ``prefix_size`` positions)."""

    is_croppable = True  # AquaKVCache.crop

    def __init__(self):
        super().__init__()
        self.sink_k = self.sink_v = None  # [B, H, prefix_size, D]
        self.buf_start = 0
        self.qk: QRows | None = None
        self.qv: QRows | None = None
        self.deq: tuple[torch.Tensor, torch.Tensor] | None = None  # keep_dequantized only

    def _tensors(self):
        return ("sink_k", "sink_v", "buf_k", "buf_v")

    def _map_batch(self, fn) -> None:
        super()._map_batch(fn)
        if self.qk is not None:
            self.qk, self.qv = self.qk.map(fn), self.qv.map(fn)
        if self.deq is not None:
            self.deq = tuple(fn(t) for t in self.deq)

    def crop(self, tokens_to_remove: int):
        raise RuntimeError("crop an AQUA-KV cache through AquaKVCache.crop")

    def nbytes(self) -> dict[str, int]:
        size = lambda t: 0 if t is None else t.numel() * t.element_size()
        return {
            "quantized": (self.qk.nbytes + self.qv.nbytes) if self.qk is not None else 0,
            "fp": sum(size(getattr(self, n)) for n in self._tensors()),
            "dequantized_kept": sum(size(t) for t in self.deq) if self.deq is not None else 0,
        }


@dataclass
class _Plan:
    """What one forward does, decided at layer 0 and applied by every layer."""

    slots: int  # slots before this forward
    tq0: int  # quantized slots before ...
    tq1: int  # ... and after the chunks completed before this forward are written
    tb1: int  # first slot the buffer keeps
    offsets: list[int]  # per row: slot of position 0
    lengths: list[int]  # per row: tokens before this forward
    tail: list[tuple[int, int]] = field(default_factory=list)  # (row, first slot it reads from the buffer)
    cached: dict = field(default_factory=dict)  # per-forward tensors shared by the layers


def _position_ids(args, kwargs):
    """The ``position_ids`` transformers hands to ``Cache.update`` (``kwargs=`` on 5.x), if any."""
    for src in (kwargs.get("kwargs"), kwargs, *args):
        if isinstance(src, dict) and src.get("position_ids") is not None:
            return src["position_ids"]
    return None


class AquaKVCache(Cache):
    """AQUA-KV cache: quantized chunks (predictor residuals) + recent buffer + each row's sinks
    (see the module docstring for the layout, positions, chunking and ``crop``).

    Parameters
    ----------
    model : transformers causal LM
        Supplies the layout (layers, KV heads, head_dim) and its rotary embedding module.
    predictors : Predictors, optional
        From :func:`aquakv.calibrate.calibrate` / :meth:`Predictors.load`; None: HIGGS-only.
    config : AquaKVConfig, optional
    quantizer, first_quantizer : optional
        Override the layer >= 1 and layer-0 quantizers (e.g. :class:`IdentityQuantizer` in tests).
    backend : {"auto", "torch", "triton"}
        Decode path: the fused Triton kernel ("auto": on CUDA) or the torch reference.
    keep_dequantized : bool
        Keep each layer's reconstruction between steps (faster decode, no memory saving). Off by default.
    """

    def __init__(self, model, predictors: Predictors | None = None, config: AquaKVConfig | None = None, *,
                 quantizer=None, first_quantizer=None, backend: str = "auto", keep_dequantized: bool = False,
                 check_fingerprint: bool = True):  # fmt: skip
        self.cfg = config or AquaKVConfig()
        mcfg = model.config
        check_supported(mcfg)
        self.num_layers, self.num_kv_heads, self.head_dim = kv_layout(mcfg)
        self.channels = C = self.num_kv_heads * self.head_dim
        if predictors is not None:
            if check_fingerprint:
                predictors.check(model)
            elif predictors.num_layers != self.num_layers or predictors.channels != C:
                raise ValueError("predictors do not match the model's layers or KV channels")
        group = self.cfg.resolved_group(C)
        self.quantizer = quantizer or HiggsQuantizer(
            C, self.cfg.edenn_d, self.cfg.edenn_n, group, self.cfg.scale_dtype
        )
        if first_quantizer is None:
            if self.cfg.first_layer_bits == 16:
                first_quantizer = IdentityQuantizer(C, torch.float16)
            else:
                d, n = FIRST_LAYER_GRIDS[self.cfg.first_layer_bits]
                first_quantizer = HiggsQuantizer(C, d, n, group, self.cfg.scale_dtype)
        self.first_quantizer = first_quantizer
        self.predictors = predictors
        self._dev_pred: dict = {}
        self._decode_fns: dict = {}
        self.backend, self.keep_dequantized = backend, keep_dequantized
        rotary = getattr(getattr(model, "model", model), "rotary_emb", None)
        if rotary is None:
            raise UnsupportedLayoutError(
                f"{type(model).__name__} has no `model.rotary_emb`: the AQUA-KV cache supports RoPE models only"
            )
        self.rope = RopeTable(rotary, self.head_dim)
        self.rope.check(next(iter(rotary.buffers()), torch.empty(0)).device)  # partial RoPE: fail now
        self._plan: _Plan | None = None
        self._offsets: list[int] | None = None  # per row: the slot of position 0 (its left pads)
        self._prev_old = self._prev_new = None
        super().__init__(layers=[_AquaLayer() for _ in range(self.num_layers)])

    # ------------------------------------------------------------------ helpers
    def _quantizer(self, layer: int):
        return self.first_quantizer if layer == 0 else self.quantizer

    def _pred(self, layer: int, device, dtype):
        if self.predictors is None or layer == 0:
            return None, None
        key = (layer, device, dtype)
        if key not in self._dev_pred:
            # weights in the compute dtype, biases in float32 (what the kernel reads): no per-step casts
            to = lambda w, b: (
                w.to(device=device, dtype=dtype).contiguous(),
                b.to(device=device, dtype=torch.float32),
            )  # noqa: E731
            k, v = to(*self.predictors.key[layer]), to(*self.predictors.value[layer])
            self._dev_pred[key] = (k, v)
        return self._dev_pred[key]

    def _rows(self, x: torch.Tensor) -> torch.Tensor:  # [B, H, T, D] -> [B, T, C]
        b, h, t, d = x.shape
        return x.transpose(1, 2).reshape(b, t, h * d)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, C] -> [B, H, T, D]
        b, t, _ = x.shape
        return x.view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)

    def _compute_dtype(self, dtype):
        return torch.float32 if dtype == torch.float32 or not torch.cuda.is_available() else dtype

    def _decode(self, q, rows: QRows, pred, x, x2, dtype, into, rope=None):
        from aquakv.kernels import decode_predict_fn

        key = (id(q), rope is not None, rows.codes.device)  # the dispatch, resolved once per cache
        if key not in self._decode_fns:
            self._decode_fns[key] = decode_predict_fn(q, rows.codes.device, self.backend,
                                                      rope[0].shape[-1] if rope is not None else None)  # fmt: skip
        w, b = pred if (pred is not None and x is not None) else (None, None)
        return self._decode_fns[key](rows, q, x if w is not None else None, w, b, x2=x2 if w is not None else None,
                                     rope=rope, into=into, out_dtype=dtype)  # fmt: skip

    # ------------------------------------------------------------------ the API
    def update(self, key_states, value_states, layer_idx: int, *args, **kwargs):
        b, h, t, d = key_states.shape
        if h != self.num_kv_heads or d != self.head_dim:
            raise UnsupportedLayoutError(
                f"unsupported attention layout: layer {layer_idx} gave keys of shape {tuple(key_states.shape)}, "
                f"expected [batch, {self.num_kv_heads} KV heads, tokens, {self.head_dim}]"
            )
        layer: _AquaLayer = self.layers[layer_idx]
        if not layer.is_initialized:
            layer.lazy_initialization(key_states, value_states)
            layer.sink_k = key_states.new_zeros(b, h, self.cfg.prefix_size, d)
            layer.sink_v = value_states.new_zeros(b, h, self.cfg.prefix_size, d)
        if layer_idx == 0:
            self._begin(b, t, _position_ids(args, kwargs))
        plan = self._plan
        T, tq1, tb1 = plan.slots, plan.tq1, plan.tb1
        if tq1 > layer.num_quantized:  # the chunks completed before this forward
            self._write(layer_idx, layer, layer.num_quantized, tq1)
        if tb1 > layer.buf_start:
            layer.buf_k = layer.buf_k[:, :, tb1 - layer.buf_start :]
            layer.buf_v = layer.buf_v[:, :, tb1 - layer.buf_start :]
            layer.buf_start = tb1
        # The tensors attention reads, [B, T, C] in memory ([B, H, T, D] views): the quantized slots
        # (reconstructed straight into place), the buffer, the new tokens; then each row's sink
        # and, for rows behind the common frontier, their unfinished chunk, in the model dtype.
        full_k = key_states.new_empty(b, T + t, h * d)
        full_v = value_states.new_empty(b, T + t, h * d)
        self._read(layer_idx, layer, full_k[:, :tq1], full_v[:, :tq1])
        hk, hv = self._heads(full_k), self._heads(full_v)
        hk[:, :, tq1:T] = layer.buf_k[:, :, tq1 - tb1 :]
        hv[:, :, tq1:T] = layer.buf_v[:, :, tq1 - tb1 :]
        hk[:, :, T:] = key_states
        hv[:, :, T:] = value_states
        for i, start in plan.tail:
            hk[i, :, start:tq1] = layer.buf_k[i, :, start - tb1 : tq1 - tb1]
            hv[i, :, start:tq1] = layer.buf_v[i, :, start - tb1 : tq1 - tb1]
        self._sink(layer, hk, hv, key_states, value_states)
        layer.buf_k = torch.cat([layer.buf_k, key_states], 2)
        layer.buf_v = torch.cat([layer.buf_v, value_states], 2)
        layer.num_slots = T + t
        if layer_idx == self.num_layers - 1:
            self._prev_old = self._prev_new = None  # no reconstruction outlives the forward pass
        return hk, hv

    def _row_offsets(self, b: int, t: int, T: int, pos) -> list[int]:
        """Each row's slot of position 0, from the new tokens' ``position_ids`` (left padding)."""
        if pos is None or (t == 1 and self._offsets is not None):
            # no positions passed: slot index = position; a decode step continues its rows (no sync)
            offs = self._offsets if self._offsets is not None else [0] * b
        else:
            pos = pos.reshape(-1, t)
            pos = pos.expand(b, t) if pos.shape[0] == 1 else pos
            offs = [T + t - 1 - int(p) for p in pos[:, -1].tolist()]
            if min(offs) < 0:
                raise ValueError(
                    f"position_ids reach {T + t - 1 - min(offs)} with only {T + t} tokens cached: the AQUA-KV "
                    "cache expects positions counted from its first token (left padding only)"
                )
            if t > 1 or self._offsets is None:  # every real token must sit at slot - offset
                slots = torch.arange(T, T + t, device=pos.device)
                off = torch.tensor(offs, device=pos.device)[:, None]
                if not bool(((pos == slots - off) | (slots < off)).all()):
                    raise ValueError(
                        "position_ids must count up by one per token after the left padding of each row "
                        "(right padding and restarting positions are not supported by the AQUA-KV cache)"
                    )
        if self._offsets is not None and offs != self._offsets:
            raise ValueError(
                f"position_ids imply left paddings {offs}, but this cache was filled with {self._offsets}: "
                "use a new cache for a new batch"
            )
        if len(offs) != b:
            raise ValueError(f"this cache holds {len(offs)} rows, the forward has {b}")
        self._offsets = offs
        return offs

    def _begin(self, b: int, t: int, pos) -> None:
        layer0: _AquaLayer = self.layers[0]
        T = layer0.num_slots
        offs = self._row_offsets(b, t, T, pos)
        prefix, chunk = self.cfg.prefix_size, max(self.cfg.buffer_size, 1)
        lengths = [max(T - o, 0) for o in offs]
        # A row's quantized frontier: its sink plus the whole chunks it holds (positions).
        done = [prefix + chunk * ((n - prefix) // chunk) if n >= prefix + chunk else 0 for n in lengths]
        tq0 = layer0.num_quantized
        tq1 = max([tq0] + [o + f for o, f in zip(offs, done) if f])
        # The first slot each row must read in the model dtype (after its sink).
        own = [min(o + max(f, prefix), T) for o, f in zip(offs, done)]
        tb1 = max(layer0.buf_start, min([tq1, *own]))
        tail = [(i, s) for i, s in enumerate(own) if s < tq1]
        self._plan = _Plan(T, tq0, tq1, tb1, offs, lengths, tail)
        self._prev_old = self._prev_new = None

    def _sink(self, layer: _AquaLayer, hk, hv, key_states, value_states) -> None:
        """Show each row's first positions in the model dtype, and keep the new ones."""
        prefix = self.cfg.prefix_size
        plan = self._plan
        if not prefix:
            return
        T, t = plan.slots, key_states.shape[2]
        rows = range(len(plan.offsets))
        uniform = len(set(plan.offsets)) == 1
        for i in [None] if uniform else rows:  # one slice for all rows when they share an offset
            j = 0 if i is None else i
            o, sel = plan.offsets[j], slice(None) if i is None else i
            n = min(prefix, plan.lengths[j])
            if n and o < plan.tq1:  # sink slots shown as codes: overwrite with the model-dtype copy
                hk[sel, :, o : o + n] = layer.sink_k[sel, :, :n]
                hv[sel, :, o : o + n] = layer.sink_v[sel, :, :n]
            p0, p1 = max(T - o, 0), min(T + t - o, prefix)
            if p1 > p0:  # positions [p0, p1) of this row arrive in this forward
                layer.sink_k[sel, :, p0:p1] = key_states[sel, :, p0 + o - T : p1 + o - T]
                layer.sink_v[sel, :, p0:p1] = value_states[sel, :, p0 + o - T : p1 + o - T]

    def _rope(self, start: int, end: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 cos/sin of slots ``[start, end)``: ``[T, D]``, or ``[B, T, D]`` for padded rows."""
        offs = self._plan.offsets
        if not any(offs):
            return self.rope.get(start, end, device, torch.float32)
        key = ("offsets", str(device))
        if key not in self._plan.cached:
            self._plan.cached[key] = torch.tensor(offs, device=device)[:, None]
        pos = torch.arange(start, end, device=device)[None] - self._plan.cached[key]
        return self.rope.gather(pos.clamp_min(0), end, device, torch.float32)  # pads: any finite key

    def _read(self, idx: int, layer: _AquaLayer, into_k: torch.Tensor, into_v: torch.Tensor) -> None:
        """Write the post-RoPE reconstruction of layer ``idx``'s quantized slots into ``into_k``/``into_v``
        (``[B, Tq, C]`` views), keeping the pre-RoPE rows for the next layer's predictors."""
        if layer.num_quantized == 0:
            return
        if layer.deq is not None and layer.deq[0].shape[1] == layer.num_quantized:
            into_k.copy_(layer.deq[0])
            into_v.copy_(layer.deq[1])
            return
        cdt = self._compute_dtype(into_k.dtype)
        q = self._quantizer(idx)
        kp, vp = self._pred(idx, layer.qk.codes.device, cdt)
        prev = self._prev_old
        rope = self._rope(0, layer.num_quantized, into_k.device)
        k_hat = self._decode(q, layer.qk, kp, prev[0] if prev else None, None, cdt, into_k, rope)
        v_hat = self._decode(q, layer.qv, vp, k_hat if prev else None, prev[1] if prev else None, cdt, into_v)
        self._prev_old = (k_hat, v_hat)
        if self.keep_dequantized:
            layer.deq = (into_k.clone(), into_v.clone())

    def _write(self, idx: int, layer: _AquaLayer, start: int, end: int) -> None:
        """Quantize slots ``[start, end)`` of layer ``idx``'s buffer (residuals of the predictions)."""
        cdt = torch.float32
        buf_k = layer.buf_k[:, :, start - layer.buf_start : end - layer.buf_start]
        buf_v = layer.buf_v[:, :, start - layer.buf_start : end - layer.buf_start]
        cos, sin = self._rope(start, end, buf_k.device)
        if cos.dim() == 3:  # per row: broadcast over the heads of [B, H, T, D]
            cos, sin = cos[:, None], sin[:, None]
        k = self._rows(unrotate(buf_k.to(cdt), cos, sin))
        v = self._rows(buf_v.to(cdt))
        q = self._quantizer(idx)
        kp, vp = self._pred(idx, buf_k.device, cdt)
        prev = self._prev_new
        if kp is not None and prev is not None:
            pk = torch.addmm(kp[1], prev[0].reshape(-1, self.channels).to(cdt), kp[0].T).view_as(k)
        else:
            pk = torch.zeros_like(k)
        rk = quantize_rows(q, k - pk, backend=self.backend)
        k_hat = pk + q.dequantize(rk, cdt)
        if vp is not None and prev is not None:
            x = torch.cat([k_hat, prev[1].to(cdt)], -1).reshape(-1, 2 * self.channels)
            pv = torch.addmm(vp[1], x, vp[0].T).view_as(v)
        else:
            pv = torch.zeros_like(v)
        rv = quantize_rows(q, v - pv, backend=self.backend)
        v_hat = pv + q.dequantize(rv, cdt)
        self._prev_new = (k_hat, v_hat)
        layer.qk = rk if layer.qk is None else QRows.cat([layer.qk, rk], 1)
        layer.qv = rv if layer.qv is None else QRows.cat([layer.qv, rv], 1)
        layer.num_quantized = end
        if self.keep_dequantized and layer.deq is not None:
            keys = self._rows(rotate(self._heads(k_hat), cos, sin)).to(buf_k.dtype)
            layer.deq = (
                torch.cat([layer.deq[0], keys], 1),
                torch.cat([layer.deq[1], v_hat.to(buf_v.dtype)], 1),
            )

    def crop(self, tokens_to_remove: int) -> None:
        """Remove the last ``-tokens_to_remove`` tokens (a positive value: keep that many, as
        transformers < 5 asked). Only tokens not yet quantized can go (always those of the last
        forward): the cache is then exactly as if it had never seen them."""
        layer0: _AquaLayer = self.layers[0]
        T = layer0.num_slots
        keep = max(T + tokens_to_remove, 0) if tokens_to_remove < 0 else tokens_to_remove
        if tokens_to_remove == 0 or keep >= T:
            return
        if keep < layer0.num_quantized:
            raise ValueError(
                f"cannot crop to {keep} tokens: the first {layer0.num_quantized} are quantized; crop removes "
                f"only tokens still in the buffer (here the last {T - layer0.num_quantized})"
            )
        for layer in self.layers:
            if layer.is_initialized:
                layer.buf_k = layer.buf_k[:, :, : keep - layer.buf_start]
                layer.buf_v = layer.buf_v[:, :, : keep - layer.buf_start]
                layer.num_slots = keep
        if keep == 0:
            self.reset()

    def reorder_cache(self, beam_idx: torch.LongTensor):
        super().reorder_cache(beam_idx)
        if self._offsets is not None:
            self._offsets = [self._offsets[i] for i in beam_idx.tolist()]

    def batch_repeat_interleave(self, repeats: int):
        super().batch_repeat_interleave(repeats)
        if self._offsets is not None:
            self._offsets = [o for o in self._offsets for _ in range(repeats)]

    def batch_select_indices(self, indices: torch.Tensor):
        super().batch_select_indices(indices)
        if self._offsets is not None:
            idx = torch.arange(len(self._offsets))[torch.as_tensor(indices).cpu()]
            self._offsets = [self._offsets[i] for i in idx.tolist()]

    def reset(self):
        super().reset()
        self._offsets = self._plan = None
        self._prev_old = self._prev_new = None

    # ------------------------------------------------------------------ accounting
    def memory(self) -> dict[str, int]:
        """Bytes held now: ``quantized`` (codes + scales), ``fp`` (sink + buffer), ``dequantized_kept``,
        ``predictors``, and ``quantized_tokens`` (per sequence)."""
        out = {"quantized": 0, "fp": 0, "dequantized_kept": 0}
        for layer in self.layers:
            for k, v in layer.nbytes().items():
                out[k] += v
        pred = 0
        if self.predictors is not None:
            pred = sum(
                t.numel() * t.element_size()
                for p in [*self.predictors.key.values(), *self.predictors.value.values()]
                for t in p
            )
        out["predictors"] = pred
        out["quantized_tokens"] = self.layers[0].num_quantized
        return out

    def measured_bytes_per_token(self) -> float:
        """Quantized bytes per token (all layers, K and V), from the allocated packed tensors."""
        m = self.memory()
        b = self.layers[0].qk.codes.shape[0] if self.layers[0].qk is not None else 1
        return m["quantized"] / max(m["quantized_tokens"] * b, 1)


# The name the issue uses: ``aquakv.Cache(model, predictors)``.
AquaCache = AquaKVCache
