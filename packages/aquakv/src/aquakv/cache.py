r"""The AQUA-KV cache for transformers' per-layer Cache API (transformers >= 4.56, 5.x).

Token layout of every layer (the same for all layers, decided once per forward at layer 0)::

    [ sink: first `prefix_size` tokens | quantized chunks (packed codes + scales) | recent buffer ]
      model dtype, post-RoPE            pre-RoPE residuals of the predictors        model dtype, post-RoPE

* New tokens fill the sink first, then the buffer. When the buffer holds ``buffer_size`` tokens
  or more, the whole buffer becomes one write-once chunk, quantized layer by layer inside the
  same forward: keys are un-rotated, predicted from layer L-1's reconstruction of the same
  tokens (values from ``[K_hat_L, V_hat_{L-1}]``), and only the residual is quantized. On that
  write step attention sees the buffer's original keys and values.
* Reading layer L reconstructs all its quantized tokens from codes (decode + inverse Hadamard +
  scale + predictor, the fused kernel on CUDA) and re-applies RoPE. Layer L-1's reconstruction is
  held only until layer L has used it, and everything is dropped after the last layer: no
  dequantized copy outlives a forward pass (unless ``keep_dequantized=True``, which trades that
  memory back for speed, off by default).

``predictors=None`` gives HIGGS-only (no prediction; the ablation).
"""

from __future__ import annotations

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
    """Per-layer storage: sink, quantized rows (keys and values), recent buffer."""

    is_compileable = False
    is_sliding = False

    def __init__(self):
        super().__init__()
        self.sink_k = self.sink_v = self.buf_k = self.buf_v = None
        self.qk: QRows | None = None
        self.qv: QRows | None = None
        self.deq: tuple[torch.Tensor, torch.Tensor] | None = None  # keep_dequantized only
        self.num_quantized = 0

    def lazy_initialization(self, key_states, value_states):
        b, h, _, d = key_states.shape
        e = key_states.new_zeros(b, h, 0, d)
        self.sink_k, self.sink_v, self.buf_k, self.buf_v = e, e.clone(), e.clone(), e.clone()
        self.device, self.dtype = key_states.device, key_states.dtype
        self.is_initialized = True

    def update(self, *args, **kwargs):
        raise RuntimeError("AQUA-KV layers are updated through their AquaKVCache")

    @property
    def num_sink(self) -> int:
        return 0 if self.sink_k is None else self.sink_k.shape[2]

    @property
    def num_buffer(self) -> int:
        return 0 if self.buf_k is None else self.buf_k.shape[2]

    def get_seq_length(self) -> int:
        return self.num_sink + self.num_quantized + self.num_buffer

    def get_mask_sizes(self, query_length, *args) -> tuple[int, int]:
        if not isinstance(query_length, int):  # older transformers passed cache_position
            query_length = query_length.shape[0]
        return self.get_seq_length() + query_length, 0

    def get_max_length(self) -> int:
        return -1

    def _tensors(self):
        return ("sink_k", "sink_v", "buf_k", "buf_v")

    def _map_batch(self, fn) -> None:
        for name in self._tensors():
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, fn(t))
        if self.qk is not None:
            self.qk, self.qv = self.qk.map(fn), self.qv.map(fn)
        if self.deq is not None:
            self.deq = tuple(fn(t) for t in self.deq)

    def reorder_cache(self, beam_idx):
        self._map_batch(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats: int):
        self._map_batch(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices):
        self._map_batch(lambda t: t[indices])

    def crop(self, tokens_to_remove: int):
        if tokens_to_remove:
            raise NotImplementedError(
                "cropping an AQUA-KV cache is not supported (quantized chunks are write-once)"
            )

    def reset(self):
        self.__init__()

    def offload(self):
        pass

    def prefetch(self):
        pass

    def nbytes(self) -> dict[str, int]:
        size = lambda t: 0 if t is None else t.numel() * t.element_size()
        return {
            "quantized": (self.qk.nbytes + self.qv.nbytes) if self.qk is not None else 0,
            "fp": sum(size(getattr(self, n)) for n in self._tensors()),
            "dequantized_kept": sum(size(t) for t in self.deq) if self.deq is not None else 0,
        }


class AquaKVCache(Cache):
    """AQUA-KV cache: fp sink + quantized chunks (predictor residuals) + fp recent buffer.

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
        self._plan = None
        self._prev_old = self._prev_new = None
        super().__init__(layers=[_Chunked() for _ in range(self.num_layers)])

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
        layer: _Chunked = self.layers[layer_idx]
        if not layer.is_initialized:
            layer.lazy_initialization(key_states, value_states)
        if layer_idx == 0:
            self._begin(layer, t)
        sink_take, flush = self._plan
        if sink_take:
            layer.sink_k = torch.cat([layer.sink_k, key_states[:, :, :sink_take]], 2)
            layer.sink_v = torch.cat([layer.sink_v, value_states[:, :, :sink_take]], 2)
        # The tensors attention reads, [B, T, C] in memory ([B, H, T, D] views): sink, the old
        # quantized tokens (reconstructed straight into place), then the buffer with the new tokens.
        ns, nq, nb = layer.num_sink, layer.num_quantized, layer.num_buffer + t - sink_take
        full_k = key_states.new_empty(b, ns + nq + nb, h * d)
        full_v = value_states.new_empty(b, ns + nq + nb, h * d)
        self._heads(full_k)[:, :, :ns] = layer.sink_k
        self._heads(full_v)[:, :, :ns] = layer.sink_v
        self._read(layer_idx, layer, full_k[:, ns : ns + nq], full_v[:, ns : ns + nq])
        buf_k = torch.cat([layer.buf_k, key_states[:, :, sink_take:]], 2)
        buf_v = torch.cat([layer.buf_v, value_states[:, :, sink_take:]], 2)
        self._heads(full_k)[:, :, ns + nq :] = buf_k
        self._heads(full_v)[:, :, ns + nq :] = buf_v
        if flush:
            self._write(layer_idx, layer, buf_k, buf_v)
            layer.buf_k, layer.buf_v = buf_k[:, :, :0], buf_v[:, :, :0]
        else:
            layer.buf_k, layer.buf_v = buf_k, buf_v
        if layer_idx == self.num_layers - 1:
            self._prev_old = self._prev_new = None  # no reconstruction outlives the forward pass
        return self._heads(full_k), self._heads(full_v)

    def _begin(self, layer0: _Chunked, t: int) -> None:
        sink_take = min(max(self.cfg.prefix_size - layer0.num_sink, 0), t)
        flush = layer0.num_buffer + t - sink_take >= max(self.cfg.buffer_size, 1)
        self._plan = (sink_take, flush)
        self._prev_old = self._prev_new = None

    def _read(self, idx: int, layer: _Chunked, into_k: torch.Tensor, into_v: torch.Tensor) -> None:
        """Write the post-RoPE reconstruction of layer ``idx``'s quantized tokens into ``into_k``/``into_v``
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
        start = layer.num_sink
        rope = self.rope.get(start, start + layer.num_quantized, into_k.device, torch.float32)
        k_hat = self._decode(q, layer.qk, kp, prev[0] if prev else None, None, cdt, into_k, rope)
        v_hat = self._decode(q, layer.qv, vp, k_hat if prev else None, prev[1] if prev else None, cdt, into_v)
        self._prev_old = (k_hat, v_hat)
        if self.keep_dequantized:
            layer.deq = (into_k.clone(), into_v.clone())

    def _write(self, idx: int, layer: _Chunked, buf_k, buf_v) -> None:
        """Quantize the buffer of layer ``idx`` as one chunk (residuals of the predictions)."""
        cdt = torch.float32
        start = layer.num_sink + layer.num_quantized
        cos, sin = self.rope.get(start, start + buf_k.shape[2], buf_k.device, cdt)
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
        layer.num_quantized += buf_k.shape[2]
        if self.keep_dequantized and layer.deq is not None:
            keys = self._rows(rotate(self._heads(k_hat), cos, sin)).to(buf_k.dtype)
            layer.deq = (
                torch.cat([layer.deq[0], keys], 1),
                torch.cat([layer.deq[1], v_hat.to(buf_v.dtype)], 1),
            )

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
