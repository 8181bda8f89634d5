"""Final answers: the last complete ``\\boxed{...}`` of a text, normalised and compared."""

from __future__ import annotations

import re


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` whose braces balance, or None."""
    found = None
    start = 0
    while True:
        i = text.find("\\boxed{", start)
        if i < 0:
            return found
        j, depth = i + len("\\boxed{"), 1
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if depth == 0:
            content = text[i + len("\\boxed{") : j - 1].strip()
            if content:
                found = content
        start = i + 1


def complete_braces(text: str) -> str | None:
    """The content of a boxed answer whose opening brace was already written (the finisher's output)."""
    depth = 1
    for j, ch in enumerate(text):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 0:
            return text[:j].strip() or None
    return None


def normalize(answer: str) -> str:
    """A canonical string: no spaces, ``$``, ``\\text``/``\\mathrm`` wrappers, ``\\left``/``\\right``,
    thousands separators or trailing period; ``\\dfrac``/``\\tfrac`` as ``\\frac``; ``\\frac{a}{b}`` as ``a/b``."""
    s = answer.strip().strip("$").strip()
    s = re.sub(r"\\(?:text|mathrm|mbox|textbf)\{([^{}]*)\}", r"\1", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "")
    s = (
        s.replace("\\dfrac", "\\frac")
        .replace("\\tfrac", "\\frac")
        .replace("^\\circ", "")
        .replace("^{\\circ}", "")
    )
    s = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"(\1)/(\2)", s)
    s = re.sub(r"\\frac(\d)(\d)", r"\1/\2", s)
    s = re.sub(r"\s+", "", s).rstrip(".")
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    s = re.sub(r"\((-?[\w.]+)\)", r"\1", s)
    return s


def _number(s: str) -> float | None:
    try:
        if "/" in s:
            num, den = s.split("/", 1)
            return float(num) / float(den)
        return float(s)
    except (ValueError, ZeroDivisionError):
        return None


def is_correct(predicted: str | None, gold: str) -> bool:
    """True when the normalised answers match, or both parse as equal numbers (rel. 1e-6)."""
    if predicted is None:
        return False
    p, g = normalize(predicted), normalize(str(gold))
    if p == g:
        return True
    a, b = _number(p), _number(g)
    return a is not None and b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(b))
