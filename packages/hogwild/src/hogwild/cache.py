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

The block lengths and bases are kept twice: as Python integers (the host's bookkeeping: slots,
merges, capacity) and in two small device tensors that every change updates in place. ``plan``
builds the tables from the device copies with tensor ops only and ``commit`` advances them with
one ``index_copy_``, so a decode step reads nothing back from the device, copies nothing to it
(given its tokens as device tensors) and launches the kernel on a grid fixed by the step's
structure: the whole step can be captured in a CUDA graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from hogwild.kernels.chunks import chunk_table
from hogwild.rope import RopeSpec, rotate


@dataclass
class Block:
    name: str
    base: int
    capacity: int
    entry: int  # index into the cache's device copies of the lengths and bases
    length: int = 0


@dataclass
class Row:
    """One batch row of a forward pass: ``tokens`` are appended to ``write_to`` as seen from ``view``.

    ``tokens`` is a list of ids or a 1-D integer tensor; when every row's tokens are tensors on the
    cache's device, the input ids are assembled there too (no host-to-device copy).
    """

    write_to: str
    view: Sequence[str]
    tokens: Sequence[int] | torch.Tensor


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
    block_base: torch.Tensor  # [F] int32
    block_len: torch.Tensor  # [F] int32, lengths after this pass's writes
    loc: (
        torch.Tensor
    )  # [F, R, S] int32: query position in the row's view minus the block's start (-1: hidden)
    rot: torch.Tensor  # [F, R, S] int32: extra rotation of a query already rotated at its local position
    new_lengths: dict[str, int] = field(default_factory=dict)
    chunks: torch.Tensor | None = None  # [C, 3] int32 kernel work list, C fixed by the structure
    max_view: int = 0  # the longest view, in tokens (from the host's lengths: no device read)
    write_entries: torch.Tensor | None = None  # [R] device entries of the rows' write blocks
    write_lengths: torch.Tensor | None = None  # [R] their lengths after the pass (commit stores them)


@dataclass
class _Layout:
    """The length-independent part of a pass's tables (cached per structure by :meth:`SharedCache.plan`,
    its tensors on the cache's device, uploaded once)."""

    names: list[str]  # blocks some row sees, in creation order
    width: int  # S, the longest row
    entries: torch.Tensor  # [F]: each block's entry in the device lengths/bases
    added: torch.Tensor  # [F]: tokens this pass appends to each block
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
        # device copies of every block's length and base, indexed by Block.entry
        self._dev_len = torch.zeros(16, dtype=torch.long, device=self.device)
        self._dev_base = torch.zeros(16, dtype=torch.long, device=self.device)
        self._free_entries: list[int] = []
        self._top = 0  # first free slot after every block's region
        self._version = 0  # bumped whenever the set or order of blocks changes (plan's cache key)
        self._layouts: dict = {}
        # split-K work items aimed at: two waves of the GPU's SMs (264 on an H100/H200); a handful
        # elsewhere (the Triton interpreter runs programs one by one)
        self.target_programs = 8
        if self.device.type == "cuda":
            self.target_programs = 2 * torch.cuda.get_device_properties(self.device).multi_processor_count

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
        b = Block(name, self._alloc(max(1, capacity)), max(1, capacity), self._new_entry())
        self._blocks[name] = b
        self._version += 1
        self._sync(b)

    def reset(self) -> None:
        """Drop every block (the pool's memory is kept for reuse)."""
        self._blocks.clear()
        self._free_entries.clear()
        self._version += 1
        self._top = 0

    def clear(self, name: str) -> None:
        """Empty a block (its slots are kept for reuse)."""
        b = self._get(name)
        b.length = 0
        self._sync(b)

    def delete(self, name: str) -> None:
        b = self._blocks.pop(self._get(name).name)
        self._free_entries.append(b.entry)
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
        self._sync(b)

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
        self._sync(d)
        self._sync(s)

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
    def _new_entry(self) -> int:
        if self._free_entries:
            return self._free_entries.pop()
        entry = len(self._blocks)  # entries 0..n-1 are taken when none is free
        if entry >= self._dev_len.numel():  # (a new allocation: a captured step must be captured again)
            grow = lambda t: torch.cat([t, torch.zeros_like(t)])
            self._dev_len, self._dev_base = grow(self._dev_len), grow(self._dev_base)
        return entry

    def _sync(self, b: Block) -> None:
        """Copy a block's length and base to the device (two fills: no host-to-device copy)."""
        self._dev_len[b.entry] = b.length
        self._dev_base[b.entry] = b.base

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
            self._sync(b)
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
            self._sync(b)
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
        view and token count) is validated, tabulated and moved to the device once per structure
        (:class:`_Layout`). The tables themselves are then computed on the device from the device
        copies of the block lengths and bases, with tensor ops only: nothing is read back to the
        host, nothing is copied to the device except list tokens (one copy of the input ids), and
        every table, the kernel's work list included, has a shape fixed by the structure. A decode
        step, whose structure repeats while only lengths grow, can therefore be captured in a CUDA
        graph (with its tokens as device tensors; re-capture after a block outgrows its slots).
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
        # host bookkeeping (Python integers only): room for the new tokens, and the longest view
        new_len = {row.write_to: self._blocks[row.write_to].length + len(row.tokens) for row in rows}
        for name, n in new_len.items():
            self._reserve(self._blocks[name], n)
        max_view = max(sum(new_len.get(n, self._blocks[n].length) for n in row.view) for row in rows)

        # device tables: tensor ops on the layout and the device lengths/bases
        s = lay.width
        before = self._dev_len[lay.entries]  # [F]
        lens = before + lay.added  # [F], after this pass's writes
        base = self._dev_base[lay.entries]  # [F]
        first = before[lay.write_index]  # [R]: each row's first new local position
        wbase = base[lay.write_index]  # [R]
        starts = (lay.precedes * lens).sum(-1)  # [R, F]: each block's start in each row's view
        local = first[:, None] + lay.offsets  # [R, S]; negative offsets: padding
        own = starts.gather(1, lay.write_index[:, None])  # [R, 1]
        qpos = own + local  # [R, S]: each new token's position in its row's view
        seen = lay.member[:, :, None] & lay.valid[None]  # [F, R, S]
        loc = qpos[None] - starts.t()[:, :, None]
        loc = torch.where(seen & (loc >= 0), loc, -1).to(torch.int32)
        rot = torch.where(seen, (own - starts).t()[:, :, None], 0).to(torch.int32)
        pos = torch.where(lay.valid, local, 0)
        dst = (wbase[:, None] + local).flatten()[lay.write_src]
        # long inputs (prefill) already give the kernel many row tiles: fewer key splits, smaller partials
        chunks = chunk_table(lens, loc, self.num_kv_heads, max(1, self.target_programs // s))
        return StepPlan(
            rows=rows,
            input_ids=self._input_ids(rows, s, pad_id),
            position_ids=pos,
            valid=lay.valid,
            write_src=lay.write_src,
            write_dst=dst,
            block_names=lay.names,
            block_base=base.to(torch.int32),
            block_len=lens.to(torch.int32),
            loc=loc,
            rot=rot,
            new_lengths=new_len,
            chunks=chunks,
            max_view=max_view,
            write_entries=lay.entries[lay.write_index],
            write_lengths=lens[lay.write_index],
        )

    def _upload(self, t: torch.Tensor) -> torch.Tensor:
        """A host tensor on the cache's device (through pinned memory on CUDA: no stream sync)."""
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def _input_ids(self, rows: list[Row], s: int, pad_id: int) -> torch.Tensor:
        """``[R, S]`` left-padded ids: assembled on the device when every row's tokens are device tensors."""
        if all(isinstance(row.tokens, torch.Tensor) and row.tokens.device == self.device for row in rows):
            pad = lambda t: torch.nn.functional.pad(t.long(), (s - t.numel(), 0), value=pad_id)
            return torch.stack([pad(row.tokens) for row in rows])
        ids = [[pad_id] * (s - len(row.tokens)) + [int(t) for t in row.tokens] for row in rows]
        return self._upload(torch.tensor(ids, dtype=torch.long))

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
        added = torch.zeros(f_count, dtype=torch.long)
        for i, row in enumerate(rows):
            order = [index[n] for n in row.view]
            for k, f in enumerate(order):
                member[f, i] = True
                precedes[i, f, order[:k]] = 1
            added[index[row.write_to]] = len(row.tokens)
        pads = torch.tensor([s - len(row.tokens) for row in rows], dtype=torch.long)
        offsets = torch.arange(s)[None, :] - pads[:, None]  # [R, S]: index among the row's new tokens
        valid = offsets >= 0
        up = self._upload
        return _Layout(
            names=names,
            width=s,
            entries=up(torch.tensor([self._blocks[n].entry for n in names], dtype=torch.long)),
            added=up(added),
            precedes=up(precedes),
            member=up(member),
            write_index=up(torch.tensor([index[row.write_to] for row in rows], dtype=torch.long)),
            offsets=up(offsets),
            valid=up(valid),
            write_src=up(torch.arange(r * s)[valid.flatten()]),
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
        """Record the lengths after a forward pass wrote every layer (on the host, and on the device
        with one ``index_copy_`` of lengths the plan computed there)."""
        for name, n in plan.new_lengths.items():
            self._blocks[name].length = n
        self._dev_len.index_copy_(0, plan.write_entries, plan.write_lengths)
