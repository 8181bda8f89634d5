"""Answer checkers: turn a response into the answer the miner compares (and eval scores).

A checker is any callable ``checker(response_text, item) -> answer`` (hashable; None = no answer).
:func:`safe_answer` wraps a call so a checker that raises counts as a failure (logged), never a crash.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

log = logging.getLogger(__name__)

FAILED = "<checker-failed>"

_HASH = re.compile(r"####\s*(-?[\d,]*\.?\d+)")
_BOXED = re.compile(r"\\boxed\{\s*(-?[\d,]*\.?\d+)\s*\}")


def _norm(num: str) -> str:
    num = num.replace(",", "")
    if "." in num:
        num = num.rstrip("0").rstrip(".") or "0"
    return num


def gsm8k_answer(text: str, item=None) -> str | None:
    """The final number after the first ``####`` or in the last ``\\boxed{}`` (commas removed)."""
    m = _HASH.search(text)
    if m:
        return _norm(m.group(1))
    boxed = _BOXED.findall(text)
    return _norm(boxed[-1]) if boxed else None


_STATED = re.compile(r"(?:####|[Aa]nswer:|\\boxed\{)\s*(-?[\d,]*\.?\d+)")


def consistent_answer(text: str, item=None) -> str | None:
    """:func:`gsm8k_answer`, but only when every statement of the final answer agrees: each
    ``Answer: N``, ``#### N`` and ``\\boxed{N}``. A self-contradictory response (``Answer: 12. #### 42``)
    has no answer.

    The built-in task's default: its solutions may restate the result on an ``Answer:`` line, and
    :func:`gsm8k_answer` reads only ``####``, so it would score ``Answer: 12. #### 42`` as 42 (and
    the miner would call a swap that corrupts only the restatement unimportant). On the built-in
    v2 pair the two checkers gave the same 3,075 mined labels (CPU, 200 problems): the judge's
    answer-line failures came from mining never reaching those lines (task v3 fixes that).
    """
    stated = {_norm(n) for n in _STATED.findall(text)}
    final = gsm8k_answer(text)
    if final is None or len(stated) > 1:
        return None
    return final


_FENCE = re.compile(r"```(?:python|py)?\n(.*?)```", re.S)


@dataclass
class CodeChecker:
    """Run the response's code plus the item's tests (``item.gold``: Python source with asserts) in a
    subprocess with a wall-time and an address-space limit. The answer is True (all tests pass) or
    False (failure, crash, timeout or out of memory)."""

    timeout: float = 5.0
    memory_mb: int = 1024

    def __call__(self, text: str, item) -> bool:
        blocks = _FENCE.findall(text)
        code = blocks[0] if blocks else text
        tests = getattr(item, "gold", None) or ""
        with tempfile.TemporaryDirectory(prefix="autojudge-code-") as tmp:
            path = os.path.join(tmp, "solution.py")
            with open(path, "w") as f:
                f.write(code + "\n\n" + str(tests) + "\n")
            limit = self.memory_mb * 1024 * 1024

            def _limits():  # runs in the child before exec
                import resource

                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

            try:
                proc = subprocess.run(
                    [sys.executable, "-I", path],
                    cwd=tmp,
                    capture_output=True,
                    timeout=self.timeout,
                    preexec_fn=_limits if os.name == "posix" else None,
                )
            except subprocess.TimeoutExpired:
                log.info("code check timed out after %.1f s (counted as a failure)", self.timeout)
                return False
            return proc.returncode == 0


def load_checker(spec: str, data: str | None = None):
    """``gsm8k`` (``####`` / ``\\boxed{}`` number), ``consistent`` (:func:`consistent_answer`),
    ``code`` (:class:`CodeChecker`), ``module:function``, or ``auto``: ``consistent`` for the
    built-in task (``data`` None, ``builtin`` or ``builtin-small``), else ``gsm8k``."""
    if spec == "auto":
        spec = "consistent" if data in (None, "builtin", "builtin-small") else "gsm8k"
    if spec in ("gsm8k", "number"):
        return gsm8k_answer
    if spec in ("consistent", "arith"):
        return consistent_answer
    if spec == "code":
        return CodeChecker()
    if ":" in spec:
        import importlib

        mod, _, fn = spec.partition(":")
        try:
            return getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"checker {spec!r}: cannot import it ({e})") from e
    raise ValueError(f"unknown checker {spec!r}: use gsm8k, code, or module:function")


def safe_answer(checker, text: str, item):
    """``checker(text, item)``; an exception is logged and counted as a failure (:data:`FAILED`)."""
    try:
        return checker(text, item)
    except Exception as e:  # a user checker may fail in any way
        log.warning("checker failed on item %s: %s: %s", getattr(item, "uid", "?"), type(e).__name__, e)
        return FAILED


def is_correct(answer, item) -> bool:
    """Accuracy against the item's gold: ``True`` answers (code) or equality with ``item.gold``."""
    if answer is True or answer is False:
        return bool(answer)
    gold = getattr(item, "gold", None)
    return answer is not None and answer != FAILED and str(answer) == str(gold)
