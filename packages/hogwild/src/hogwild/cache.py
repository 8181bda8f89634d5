"""The shared KV cache: named blocks whose keys are stored once, at local positions 0..len-1.

All blocks of all layers live in one pool per tensor, ``keys [layers, Hkv, N, D]``; block ``b``
owns the slots ``base_b .. base_b + capacity_b`` and fills them from the start. A block that
outgrows its slots moves to the end of the pool (the pool doubles, compacting, when full), so
appending is amortised O(1) per token and attention reads each block as one contiguous slice.

A forward pass is described by :class:`Row` s (one per worker, or one for a prefill): the block the
row writes to, its *view* (an ordered list of block names, usually ending with its own block) and
the tokens it feeds. :meth:`SharedCache.plan` turns the rows into the tables the attention op needs
(``rot``/``limit``, see :mod:`hogwild.attention`); every row's new keys are written to the pool
before any row attends, so workers see each other's tokens of the same step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from hogwild.rope import RopeSpec, rotate


@dataclass
class Block:
    name: str
    base: int
    capacity: int
    length: int = 0


@dataclass
class Row:
    """One batch row of a forward pass: ``tokens`` are appended to ``write_to`` as seen from ``view``."""

    write_to: str
    view: Sequence[str]
    tokens: Sequence[int]


@dataclass
class StepPlan:
    """Everything one forward pass needs, computed once and shared by every layer."""

    rows: list[Row]
    input_ids: torch.Tensor  # [R, S], left-padded
    position_ids: torch.Tensor  # [R, S]: local positions in the write block (0 on padding)
    valid: torch.Tensor  # [R, S] bool
    write_src: torch.Tensor  # [T] indices into the flattened [R*S] tokens that are written
    write_dst: torch.Tensor  # [T] pool slots they go to
    block_names: list[str]
    block_base: torch.Tensor  # [F]
    block_len: torch.Tensor  # [F], lengths after this pass's writes
    loc: torch.Tensor  # [F, R, S]: query position in the row's view minus the block's start (-1: hidden)
    rot: torch.Tensor  # [F, R, S]: extra rotation of a query already rotated at its local position
    new_lengths: dict[str, int] = field(default_factory=dict)
    chunks: torch.Tensor | None = None  # [C, 3] kernel work list
    max_view: int = 0  # the longest view, in tokens (a Python int: no device sync to read it)


@dataclass
class _Layout:
    """The length-independent part of a pass's tables (cached per structure by :meth:`SharedCache.plan`)."""

    names: list[str]  # blocks some row sees, in creation order
    width: int  # S, the longest row
    precedes: torch.Tensor  # [R, F, F]: 1 where block g comes before block f in row r's view
    member: torch.Tensor  # [F, R] bool: block f is in row r's view
    write_index: torch.Tensor  # [R]: each row's write block, as an index into names
    offsets: torch.Tensor  # [R, S]: index among the row's new tokens (negative on left padding)
    valid: torch.Tensor  # [R, S] bool
    write_src: torch.Tensor  # [T]: flattened [R*S] indices of the real tokens


class SharedCache:
    """Blocks of keys/values shared by several workers (see the module docstring).

    Parameters
    ----------
    num_layers, num_kv_heads, head_dim : the model's attention shape.
    rope : the model's :class:`~hogwild.rope.RopeSpec` (used to re-rotate keys when blocks merge).
    dtype, device : of the stored keys and values.
    capacity : initial pool size in tokens (it grows as needed).
    """

    def __init__(
        self,
        num_layers: int,
        num_kv_heads: int,
        head_dim: int,
        rope: RopeSpec,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        capacity: int = 1024,
        v_head_dim: int | None = None,
    ):
        if num_layers < 0 or num_kv_heads < 1 or head_dim < 2 or head_dim % 2:
            raise ValueError(
                f"invalid cache shape: layers {num_layers}, kv heads {num_kv_heads}, head_dim {head_dim}"
            )
        if rope.head_dim != head_dim:
            raise ValueError(f"rope covers {rope.head_dim} dims but head_dim is {head_dim}")
        self.num_layers, self.num_kv_heads, self.head_dim = num_layers, num_kv_heads, head_dim
        self.v_head_dim = v_head_dim or head_dim
        self.dtype, self.device = dtype, torch.device(device)
        self.rope = rope.to(self.device)
        self.keys = torch.zeros(num_layers, num_kv_heads, capacity, head_dim, dtype=dtype, device=self.device)
        self.values = torch.zeros(
            num_layers, num_kv_heads, capacity, self.v_head_dim, dtype=dtype, device=self.device
        )
        self._blocks: dict[str, Block] = {}
        self._top = 0  # first free slot after every block's region
        self._version = 0  # bumped whenever the set or order of blocks changes (plan's cache key)
        self._layouts: dict = {}
        self.target_programs = 2 * 132  # split-K work items aimed at (two waves on an H200)

    @classmethod
    def for_model(cls, model, *, capacity: int = 1024, dtype=None, device=None) -> SharedCache:
        """A cache shaped for a transformers decoder (its layers, kv heads, head dim and RoPE)."""
        cfg = model.config
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        p = next(model.parameters())
        return cls(
            cfg.num_hidden_layers,
            cfg.num_key_value_heads,
            head_dim,
            RopeSpec.from_model(model),
            dtype=dtype or p.dtype,
            device=device or p.device,
            capacity=capacity,
        )

    # ------------------------------------------------------------------ blocks
    @property
    def blocks(self) -> list[str]:
        return list(self._blocks)

    def __contains__(self, name: str) -> bool:
        return name in self._blocks

    def _get(self, name: str) -> Block:
        if name not in self._blocks:
            raise KeyError(
                f"no block named {name!r} in the cache (blocks: {', '.join(self._blocks) or 'none'})"
            )
        return self._blocks[name]

    def length(self, name: str) -> int:
        return self._get(name).length

    def lengths(self) -> dict[str, int]:
        return {n: b.length for n, b in self._blocks.items()}

    def create(self, name: str, capacity: int = 64) -> None:
        """Add an empty block."""
        if name in self._blocks:
            raise ValueError(f"block {name!r} already exists")
        if not name:
            raise ValueError("block names must be non-empty strings")
        self._blocks[name] = Block(name, self._alloc(max(1, capacity)), max(1, capacity))
        self._version += 1

    def reset(self) -> None:
        """Drop every block (the pool's memory is kept for reuse)."""
        self._blocks.clear()
        self._version += 1
        self._top = 0

    def clear(self, name: str) -> None:
        """Empty a block (its slots are kept for reuse)."""
        self._get(name).length = 0

    def delete(self, name: str) -> None:
        del self._blocks[self._get(name).name]
        self._version += 1

    def rename(self, old: str, new: str) -> None:
        """Rename a block (a step moving into a history of blocks: no re-rotation at all)."""
        if new in self._blocks:
            raise ValueError(f"block {new!r} already exists")
        b = self._blocks.pop(self._get(old).name)
        b.name = new
        self._blocks[new] = b
        self._version += 1

    def keys_of(self, name: str, layer: int) -> torch.Tensor:
        """``[Hkv, len, D]`` keys of a block, rotated at its local positions 0..len-1."""
        b = self._get(name)
        return self.keys[layer, :, b.base : b.base + b.length]

    def values_of(self, name: str, layer: int) -> torch.Tensor:
        b = self._get(name)
        return self.values[layer, :, b.base : b.base + b.length]

    def append_kv(self, name: str, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Append ``[layers, Hkv, n, D]`` keys (already rotated at local positions len..len+n-1) and values."""
        b = self._get(name)
        n = keys.shape[2]
        self._reserve(b, b.length + n)
        self.keys[:, :, b.base + b.length : b.base + b.length + n] = keys.to(self.dtype)
        self.values[:, :, b.base + b.length : b.base + b.length + n] = values.to(self.dtype)
        b.length += n

    def merge(self, dst: str, src: str, count: int | None = None) -> None:
        """Move the first ``count`` tokens (default: all) of ``src`` to the end of ``dst``.

        The moved keys get one re-rotation (by ``len(dst)``); tokens left in ``src`` shift to its start
        with one re-rotation (by ``-count``). This is how a finished step moves into the shared history
        while the first tokens of the next step stay in the worker's block.
        """
        d, s = self._get(dst), self._get(src)
        if d is s:
            raise ValueError("cannot merge a block into itself")
        n = s.length if count is None else count
        if not 0 <= n <= s.length:
            raise ValueError(f"cannot move {n} tokens out of block {src!r} of length {s.length}")
        off = d.length
        self._reserve(d, off + n)  # may move s too: read its base afterwards
        inv = self.rope.inv_freq
        k = self.keys[:, :, s.base : s.base + n]
        self.keys[:, :, d.base + off : d.base + off + n] = rotate(k, off, inv)
        self.values[:, :, d.base + off : d.base + off + n] = self.values[:, :, s.base : s.base + n]
        d.length += n
        rest = s.length - n
        if rest:
            k = self.keys[:, :, s.base + n : s.base + s.length].clone()
            v = self.values[:, :, s.base + n : s.base + s.length].clone()
            self.keys[:, :, s.base : s.base + rest] = rotate(k, -n, inv)
            self.values[:, :, s.base : s.base + rest] = v
        s.length = rest

    def view_kv(self, view: Sequence[str], layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The explicit ``[Hkv, T, D]`` keys and values of a view: blocks concatenated, each re-rotated
        to its start in the view (what the naive approach materialises per worker)."""
        ks, vs, off = [], [], 0
        for name in view:
            ks.append(rotate(self.keys_of(name, layer), off, self.rope.inv_freq))
            vs.append(self.values_of(name, layer))
            off += self.length(name)
        return torch.cat(ks, dim=1), torch.cat(vs, dim=1)

    # ------------------------------------------------------------------ storage
    def _alloc(self, n: int) -> int:
        if self._top + n > self.keys.shape[2]:
            self._grow(n)
        base = self._top
        self._top += n
        return base

    def _reserve(self, b: Block, need: int) -> None:
        if need <= b.capacity:
            return
        new_cap = max(need, 2 * b.capacity)
        if b.base + b.capacity == self._top and b.base + new_cap <= self.keys.shape[2]:
            self._top = b.base + new_cap  # the last region grows in place
        else:
            base = self._alloc(new_cap)
            self.keys[:, :, base : base + b.length] = self.keys[:, :, b.base : b.base + b.length]
            self.values[:, :, base : base + b.length] = self.values[:, :, b.base : b.base + b.length]
            b.base = base
        b.capacity = new_cap

    def _grow(self, extra: int) -> None:
        """Compact every block into a new pool with room for ``extra`` more slots (at least doubled)."""
        live = sum(b.capacity for b in self._blocks.values())
        size = max(2 * (live + extra), self.keys.shape[2], 64)
        shape = lambda t: (t.shape[0], t.shape[1], size, t.shape[3])
        keys = torch.zeros(shape(self.keys), dtype=self.dtype, device=self.device)
        values = torch.zeros(shape(self.values), dtype=self.dtype, device=self.device)
        top = 0
        for b in self._blocks.values():
            keys[:, :, top : top + b.length] = self.keys[:, :, b.base : b.base + b.length]
            values[:, :, top : top + b.length] = self.values[:, :, b.base : b.base + b.length]
            b.base, top = top, top + b.capacity
        self.keys, self.values, self._top = keys, values, top

    @property
    def pool_tokens(self) -> int:
        return self.keys.shape[2]

    def memory_bytes(self) -> int:
        return self.keys.numel() * self.keys.element_size() + self.values.numel() * self.values.element_size()

    # ------------------------------------------------------------------ forward passes
    def plan(self, rows: Sequence[Row], pad_id: int = 0) -> StepPlan:
        """Reserve slots for every row's tokens and build the attention tables of one forward pass.

        What depends only on the *structure* of the pass (which blocks exist, each row's write block,
        view and token count) is validated and tabulated once and cached (:class:`_Layout`); a decode
        step, whose structure repeats while only lengths grow, then builds its tables with a few
        vectorised CPU ops and moves them to the device in two copies.
        """
        rows = list(rows)
        if not rows:
            raise ValueError("a forward pass needs at least one row")
        key = (self._version, tuple((row.write_to, tuple(row.view), len(row.tokens)) for row in rows))
        lay = self._layouts.get(key)
        if lay is None:
            lay = self._layout(rows)
            if len(self._layouts) >= 16:
                self._layouts.pop(next(iter(self._layouts)))
            self._layouts[key] = lay
        r, s, names = len(rows), lay.width, lay.names
        new_len = {n: b.length for n, b in self._blocks.items()}
        for row in rows:
            new_len[row.write_to] += len(row.tokens)
        for name, n in new_len.items():
            self._reserve(self._blocks[name], n)

        lens = torch.tensor([new_len[n] for n in names], dtype=torch.long)  # [F]
        first = torch.tensor([self._blocks[row.write_to].length for row in rows], dtype=torch.long)  # [R]
        wbase = torch.tensor([self._blocks[row.write_to].base for row in rows], dtype=torch.long)
        starts = lay.precedes @ lens  # [R, F]: each block's start in each row's view
        local = first[:, None] + lay.offsets  # [R, S]; negative offsets: padding
        own = starts.gather(1, lay.write_index[:, None])  # [R, 1]
        qpos = own + local  # [R, S]: each new token's position in its row's view
        seen = lay.member[:, :, None] & lay.valid[None]  # [F, R, S]
        loc = qpos[None] - starts.t()[:, :, None]
        loc = torch.where(seen & (loc >= 0), loc, -1)
        rot = torch.where(seen, (own - starts).t()[:, :, None].expand_as(loc), 0)
        pos = torch.where(lay.valid, local, 0)
        dst = (wbase[:, None] + local)[lay.valid]
        ids = torch.tensor(
            [[pad_id] * (s - len(row.tokens)) + list(row.tokens) for row in rows], dtype=torch.long
        )
        view_len = (lay.member.t().long() * lens).sum(1)  # [R]
        from hogwild.kernels.chunks import make_chunks

        # long inputs (prefill) already give the kernel many row tiles: fewer key splits, smaller partials
        chunks = make_chunks(lens.tolist(), loc, self.num_kv_heads, max(1, self.target_programs // s))
        base = torch.tensor([self._blocks[n].base for n in names], dtype=torch.long)
        # two host-to-device copies (int64 for the model and the writes, int32 for the kernel)
        n_tok = r * s
        big = torch.cat([ids.flatten(), pos.flatten(), lay.write_src, dst]).to(self.device)
        f_count = len(names)
        small = torch.cat(
            [base, lens, loc.flatten(), rot.flatten(), chunks.flatten().long(), lay.valid.flatten().long()]
        ).to(device=self.device, dtype=torch.int32)
        parts = small.split([f_count, f_count, loc.numel(), loc.numel(), chunks.numel(), n_tok])
        n_w = lay.write_src.numel()
        ids_d, pos_d, src_d, dst_d = big.split([n_tok, n_tok, n_w, n_w])
        return StepPlan(
            rows=rows,
            input_ids=ids_d.view(r, s),
            position_ids=pos_d.view(r, s),
            valid=parts[5].view(r, s) != 0,
            write_src=src_d,
            write_dst=dst_d,
            block_names=names,
            block_base=parts[0],
            block_len=parts[1],
            loc=parts[2].view(f_count, r, s),
            rot=parts[3].view(f_count, r, s),
            new_lengths={row.write_to: new_len[row.write_to] for row in rows},
            chunks=parts[4].view(-1, 3),
            max_view=int(view_len.max()),
        )

    def _layout(self, rows: list[Row]) -> _Layout:
        """Validate the rows' structure and tabulate what does not depend on block lengths."""
        writers: dict[str, int] = {}
        for i, row in enumerate(rows):
            if len(row.view) != len(set(row.view)):
                raise ValueError(f"row {i}: its view lists a block twice: {list(row.view)}")
            for name in row.view:
                if name not in self._blocks:
                    raise KeyError(
                        f"row {i}: its view references the missing block {name!r} "
                        f"(blocks: {', '.join(self._blocks) or 'none'})"
                    )
            if row.write_to not in row.view:
                raise ValueError(f"row {i}: it writes to {row.write_to!r}, which is not in its view")
            if row.write_to in writers:
                raise ValueError(f"rows {writers[row.write_to]} and {i} both write to block {row.write_to!r}")
            writers[row.write_to] = i
            if len(row.tokens) == 0:
                raise ValueError(f"row {i}: no tokens to feed")
        r, s = len(rows), max(len(row.tokens) for row in rows)
        names = [n for n in self._blocks if any(n in row.view for row in rows)]
        index = {n: f for f, n in enumerate(names)}
        f_count = len(names)
        precedes = torch.zeros(r, f_count, f_count, dtype=torch.long)
        member = torch.zeros(f_count, r, dtype=torch.bool)
        for i, row in enumerate(rows):
            order = [index[n] for n in row.view]
            for k, f in enumerate(order):
                member[f, i] = True
                precedes[i, f, order[:k]] = 1
        pads = torch.tensor([s - len(row.tokens) for row in rows], dtype=torch.long)
        offsets = torch.arange(s)[None, :] - pads[:, None]  # [R, S]: index among the row's new tokens
        valid = offsets >= 0
        return _Layout(
            names=names,
            width=s,
            precedes=precedes,
            member=member,
            write_index=torch.tensor([index[row.write_to] for row in rows], dtype=torch.long),
            offsets=offsets,
            valid=valid,
            write_src=torch.arange(r * s)[valid.flatten()],
        )

    def write(self, plan: StepPlan, layer: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store one layer's new ``[R, Hkv, S, D]`` keys/values of ``plan`` (padding is skipped)."""
        r, h, s, d = keys.shape
        k = keys.permute(1, 0, 2, 3).reshape(h, r * s, d)[:, plan.write_src]
        v = values.permute(1, 0, 2, 3).reshape(h, r * s, values.shape[-1])[:, plan.write_src]
        self.keys[layer].index_copy_(1, plan.write_dst, k.to(self.dtype))
        self.values[layer].index_copy_(1, plan.write_dst, v.to(self.dtype))

    def attend(self, plan: StepPlan, layer: int, q: torch.Tensor, scale: float, backend: str = "auto"):
        """Attention of ``[R, Hq, S, D]`` queries (rotated at their local positions, as the model does)."""
        from hogwild.attention import hogwild_attention

        return hogwild_attention(
            q,
            self.keys[layer],
            self.values[layer],
            plan.block_base,
            plan.block_len,
            plan.rot,
            plan.loc,
            self.rope.inv_freq,
            scale,
            backend=backend,
            chunks=plan.chunks,
        )

    def commit(self, plan: StepPlan) -> None:
        """Record the lengths after a forward pass wrote every layer."""
        for name, n in plan.new_lengths.items():
            self._blocks[name].length = n
