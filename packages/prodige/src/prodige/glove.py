r"""The GloVe co-occurrence objective on a graph (the paper's word-embedding task).

GloVe (Pennington et al. 2014) fits :math:`w_i^\top \tilde w_j + b_i + \tilde b_j \approx \log X_{ij}`
on the nonzero co-occurrence counts :math:`X_{ij}`. PRODIGE replaces the dot product by a negative
squared graph distance (as in the authors' GloVe notebook):

.. math::

    L = \frac{1}{\sum_{ij} f(X_{ij})} \sum_{X_{ij} > 0} f(X_{ij})
        \big(b_i + b_j - d_G(i, j)^2 - \log X_{ij}\big)^2 ,
    \qquad f(x) = \min(1, x / x_{\max})^{\alpha}

(:math:`x_{\max} = 100`, :math:`\alpha = 3/4`), with one learned bias per word. A batch draws rows
with probability :math:`F_i / F` (:math:`F_i = \sum_j f(X_{ij})`) and up to ``targets_per_source``
of each row's nonzero columns, weighted :math:`f(X_{ij}) / \sum_{j \in \text{batch}} f(X_{ij})`:
with every column of a row in the batch, the batch loss is an unbiased estimate of :math:`L`.

Built-in co-occurrence matrices (offline): ``"stdlib"`` counts words in the docstrings of Python's
own standard library; ``"synthetic"`` generates text from a tree of topics (words of one topic
co-occur), so the structure to recover is known. :func:`cooccurrence` takes any token list (GloVe's
symmetric window, each co-occurrence weighted ``1 / offset``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from prodige.tasks import Batch

__all__ = [
    "Cooccurrence",
    "GloveBatch",
    "GloveTask",
    "GloveVectors",
    "cooccurrence",
    "glove_weight",
    "init_glove_graph",
    "load_cooccurrence",
    "nearest_words",
    "stdlib_tokens",
    "svd_vectors",
    "synthetic_tokens",
]

STDLIB_MODULES = (
    "abc argparse ast asyncio base64 bisect calendar collections concurrent.futures configparser contextlib "
    "copy csv dataclasses datetime decimal difflib email enum fileinput fnmatch fractions ftplib functools "
    "getopt gettext glob gzip hashlib heapq hmac html html.parser http.client http.server imaplib inspect io "
    "ipaddress itertools json locale logging mailbox mimetypes multiprocessing numbers operator optparse os "
    "pathlib pickle platform poplib pprint queue random re sched secrets selectors shlex shutil smtplib socket "
    "socketserver sqlite3 statistics string struct subprocess tarfile tempfile textwrap threading timeit "
    "tokenize traceback types typing unittest urllib.parse urllib.request uuid warnings weakref xml.dom.minidom "
    "zipfile zoneinfo"
).split()


@dataclass
class Cooccurrence:
    """A symmetric co-occurrence matrix ``X`` (``[V, V]`` CSR, zero diagonal) over ``words``."""

    X: sp.csr_array
    words: list[str]

    @property
    def n_words(self) -> int:
        return len(self.words)


def glove_weight(x, x_max: float = 100.0, alpha: float = 0.75) -> np.ndarray:
    """GloVe's weight :math:`f(x) = \\min(1, x / x_{\\max})^{\\alpha}`."""
    return np.minimum(1.0, np.asarray(x, dtype=np.float64) / x_max) ** alpha


def cooccurrence(tokens, n_words: int = 500, window: int = 5, min_count: int = 1) -> Cooccurrence:
    """Counts of the ``n_words`` most frequent tokens within ``window`` positions of each other,
    each weighted ``1 / offset`` (GloVe), symmetric, diagonal removed. Ties in frequency are broken
    alphabetically, so the vocabulary is deterministic."""
    tokens = list(tokens)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    vocab, counts = np.unique(np.asarray(tokens, dtype=object).astype(str), return_counts=True)
    order = np.lexsort((vocab, -counts))
    order = order[counts[order] >= min_count][:n_words]
    if len(order) < 2:
        raise ValueError(
            f"the text has {len(order)} distinct word(s) (min_count={min_count}): need at least 2"
        )
    words = [str(w) for w in vocab[order]]
    index = {w: i for i, w in enumerate(words)}
    ids = np.array([index.get(t, -1) for t in tokens], dtype=np.int64)
    rows, cols, vals = [], [], []
    for k in range(1, window + 1):
        a, b = ids[:-k], ids[k:]
        ok = (a >= 0) & (b >= 0) & (a != b)
        rows.append(a[ok])
        cols.append(b[ok])
        vals.append(np.full(int(ok.sum()), 1.0 / k))
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    V = len(words)
    X = sp.coo_array((np.r_[v, v], (np.r_[r, c], np.r_[c, r])), shape=(V, V)).tocsr()
    X.sum_duplicates()
    X.sort_indices()
    return Cooccurrence(X, words)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def stdlib_tokens() -> list[str]:
    """Lower-case words of the docstrings of ~100 standard-library modules (offline, about 200k
    words; the exact text follows the Python version)."""
    import ast
    import importlib.util

    tokens = []
    for name in STDLIB_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    tokens += _words(doc)
    return tokens


def synthetic_tokens(n_tokens: int = 100_000, branching: int = 4, depth: int = 3, words_per_leaf: int = 8,
                     sentence: int = 12, seed: int = 0) -> tuple[list[str], np.ndarray]:  # fmt: skip
    """Text from a tree of topics: each sentence picks a leaf topic and draws its words from that
    leaf (weight 1), its siblings (1/4) and anywhere (1/16), Zipf-weighted within a topic. Words are
    ``"t<leaf>w<k>"``. Returns (tokens, leaf topic of each word)."""
    rng = np.random.default_rng(seed)
    leaves = branching**depth
    n_words = leaves * words_per_leaf
    leaf = np.repeat(np.arange(leaves), words_per_leaf)
    zipf = 1.0 / (1 + np.tile(np.arange(words_per_leaf), leaves))
    names = np.array([f"t{t}w{k}" for t, k in zip(leaf, np.tile(np.arange(words_per_leaf), leaves))])
    out = []
    for _ in range(n_tokens // sentence):
        t = rng.integers(leaves)
        aff = np.where(leaf == t, 1.0, np.where(leaf // branching == t // branching, 0.25, 1 / 16))
        p = aff * zipf
        out.append(names[rng.choice(n_words, sentence, p=p / p.sum())])
    return [str(w) for w in np.concatenate(out)], leaf


def load_cooccurrence(
    source: str = "stdlib", n_words: int = 500, window: int = 5, seed: int = 0
) -> Cooccurrence:
    """``"stdlib"``, ``"synthetic"``, a text file (``.txt``: its lower-case words), or a square
    ``.npy`` count matrix (words named ``"0"``, ``"1"``, ...)."""
    from pathlib import Path

    if source == "stdlib":
        return cooccurrence(stdlib_tokens(), n_words, window)
    if source == "synthetic":
        return cooccurrence(synthetic_tokens(seed=seed)[0], n_words, window)
    p = Path(source)
    if p.suffix not in (".txt", ".npy"):
        raise ValueError(f"--text {source}: use stdlib, synthetic, a .txt file or a square .npy count matrix")
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {source}")
    if p.suffix == ".txt":
        return cooccurrence(_words(p.read_text(encoding="utf-8", errors="replace")), n_words, window)
    X = np.load(p, allow_pickle=False).astype(np.float64)
    if X.ndim != 2 or X.shape[0] != X.shape[1]:
        raise ValueError(f"{source}: a co-occurrence matrix must be square [V, V], got shape {X.shape}")
    if not np.isfinite(X).all() or (X < 0).any():
        raise ValueError(f"{source}: co-occurrence counts must be finite and >= 0")
    if not np.allclose(X, X.T):
        raise ValueError(f"{source}: the co-occurrence matrix is not symmetric: pass X + X.T")
    np.fill_diagonal(X, 0)
    return Cooccurrence(sp.csr_array(X), [str(i) for i in range(len(X))])


@dataclass
class GloveBatch(Batch):
    weight: np.ndarray  # f(X_ij) normalised to sum 1 over each row's columns in the batch
    target: np.ndarray  # log X_ij
    n_rows: int


class GloveTask:
    """The graph GloVe objective (see the module docstring) on a :class:`Cooccurrence`.

    Dense parameters: one bias per word, ``graph.dense.extra["bias"]`` (Adam).
    """

    def __init__(self, cooc: Cooccurrence, x_max: float = 100.0, alpha: float = 0.75):
        X = sp.csr_array(cooc.X)
        X.sort_indices()
        self.cooc, self.X, self.x_max, self.alpha = cooc, X, x_max, alpha
        self.n_data = cooc.n_words
        self.f = glove_weight(X.data, x_max, alpha)
        row_f = np.add.reduceat(self.f, X.indptr[:-1]) if len(self.f) else np.zeros(self.n_data)
        row_f[np.diff(X.indptr) == 0] = 0
        if row_f.sum() <= 0:
            raise ValueError("the co-occurrence matrix is empty: nothing to fit")
        self.row_p = row_f / row_f.sum()

    def init_dense(self, graph, distances: np.ndarray | None = None) -> None:
        """Biases by weighted least squares for the initial graph: ``b_i + b_j ≈ log X_ij + d_ij²``."""
        from scipy.sparse.linalg import lsqr

        from prodige.paths import pairwise_distances

        self._graph = graph
        if "bias" in graph.dense.extra:  # already set (a loaded or resumed graph): only bind
            return
        i, j = self._pairs()
        D = pairwise_distances(graph) if distances is None else distances
        r = np.log(self.X.data) + D[i, j] ** 2
        sw = np.sqrt(self.f)
        n = np.arange(len(i))
        A = sp.csr_array((np.r_[sw, sw], (np.r_[n, n], np.r_[i, j])), shape=(len(i), self.n_data))
        b = lsqr(A, sw * r, atol=1e-10, btol=1e-10, iter_lim=2000)[0]
        graph.dense.extra["bias"] = torch.nn.Parameter(torch.from_numpy(b.astype(np.float64)))

    def _pairs(self):
        i = np.repeat(np.arange(self.n_data), np.diff(self.X.indptr))
        return i, self.X.indices.astype(np.int64)

    def sample(self, rng: np.random.Generator, n_sources: int, targets_per_source: int) -> GloveBatch:
        rows = rng.choice(self.n_data, n_sources, p=self.row_p)
        src, dst, w, t = [], [], [], []
        for r in rows:
            lo, hi = self.X.indptr[r], self.X.indptr[r + 1]
            k = np.arange(lo, hi)
            if targets_per_source and len(k) > targets_per_source:
                k = np.sort(rng.choice(k, targets_per_source, replace=False))
            f = self.f[k]
            src.append(np.full(len(k), r))
            dst.append(self.X.indices[k])
            w.append(f / f.sum())
            t.append(np.log(self.X.data[k]))
        cat = np.concatenate
        return GloveBatch(cat(src).astype(np.int64), cat(dst).astype(np.int64), cat(w), cat(t), len(rows))

    def bias(self, graph=None) -> torch.Tensor:
        """The word biases (of the graph bound by :meth:`init_dense` when ``graph`` is None)."""
        return (graph or self._graph).dense.extra["bias"]

    def loss(self, d: torch.Tensor, batch: GloveBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch loss ``sum_ij w_ij (b_i + b_j - d_ij^2 - log X_ij)^2 / rows`` and the per-pair
        unweighted squared residual."""
        b = self.bias().to(d.dtype)
        s, t = torch.from_numpy(batch.src), torch.from_numpy(batch.dst)
        res = b[s] + b[t] - d**2 - torch.from_numpy(batch.target).to(d.dtype)
        w = torch.from_numpy(batch.weight).to(d.dtype)
        return (w * res**2).sum() / batch.n_rows, res**2

    def objective(self, graph) -> float:
        """The full weighted GloVe loss :math:`L` of the eval-mode graph (every nonzero pair)."""
        from prodige.paths import pairwise_distances

        i, j = self._pairs()
        D = pairwise_distances(graph)
        b = self.bias(graph).detach().double().numpy()
        res = b[i] + b[j] - D[i, j] ** 2 - np.log(self.X.data)
        return float((self.f * res**2).sum() / self.f.sum())


def svd_vectors(cooc: Cooccurrence, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Unit-norm rows of the rank-``dim`` SVD of ``log(1 + X)`` (an initial word geometry)."""
    from sklearn.decomposition import TruncatedSVD

    L = sp.csr_array(cooc.X, copy=True)
    L.data = np.log1p(L.data)
    k = max(1, min(dim, cooc.n_words - 1))
    Z = TruncatedSVD(k, random_state=seed).fit_transform(L)
    return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)


def init_glove_graph(cooc: Cooccurrence, config=None, dim: int = 32, seed: int = 0):
    """kNN + random edges on :func:`svd_vectors` (the authors start from trained GloVe vectors),
    weights = the vectors' Euclidean distances."""
    from prodige.init import init_graph

    Z = svd_vectors(cooc, dim, seed)
    return init_graph(Z, None, config, default_distance=4.0, seed=seed)


def nearest_words(graph, cooc: Cooccurrence, word: str, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` words nearest to ``word`` in the eval-mode graph, with their distances."""
    from prodige.paths import pairwise_distances

    if word not in cooc.words:
        raise ValueError(f"{word!r} is not in the vocabulary ({cooc.n_words} words)")
    d = pairwise_distances(graph, sources=[cooc.words.index(word)])[0]
    order = [i for i in np.argsort(d, kind="stable") if cooc.words[i] != word][:k]
    return [(cooc.words[i], float(d[i])) for i in order]


class GloveVectors(torch.nn.Module):
    """The vector baseline at equal size: tied GloVe, ``x_i . x_j + b_i + b_j ≈ log X_ij`` with
    ``dim + 1`` numbers per word (``-|x_i - x_j|^2`` is the same model: the biases absorb the
    norms), trained full-batch with Adam on the same weighted loss."""

    def __init__(self, n_words: int, dim: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.x = torch.nn.Parameter(0.1 * torch.randn(n_words, dim, generator=g, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.zeros(n_words, dtype=torch.float64))

    def residual(self, task: GloveTask) -> torch.Tensor:
        i, j = (torch.from_numpy(a) for a in task._pairs())
        pred = (self.x[i] * self.x[j]).sum(1) + self.b[i] + self.b[j]
        return pred - torch.from_numpy(np.log(task.X.data))

    def fit(self, task: GloveTask, steps: int = 2000, lr: float = 0.05) -> GloveVectors:
        f = torch.from_numpy(task.f / task.f.sum())
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        for _ in range(steps):
            loss = (f * self.residual(task) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return self

    @torch.no_grad()
    def objective(self, task: GloveTask) -> float:
        return float((torch.from_numpy(task.f) * self.residual(task) ** 2).sum() / task.f.sum())
