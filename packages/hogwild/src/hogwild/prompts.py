"""Prompt text for the workers (written for this package).

The prompts tell each worker how its context is laid out, so that it can read the others' work
in progress and react to it. Every piece of text a layout inserts is here, in one place, so that
a tokenizer check (:func:`check_tokenizer`) can make sure each piece survives tokenization.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAMES = ("Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi")

HISTORY_HEADER = "### Past steps\n\n"
OTHERS_HEADER = "### Work in progress (others)\n\n"
OWN_HEADER = "### Work in progress (own)\n\n"
CUT_MARKER = "<...>"
SEPARATOR = f" {CUT_MARKER}\n\n"
CHECK_QUESTION = "Quick check: am I repeating work someone else is already doing? (yes/no): "
FINISHER_SUFFIX = (
    "\n\nTime is up, so we have to answer now. Putting together everything above, "
    "the final answer is \\boxed{"
)

LAYOUT_TEXT = {
    "combined": (
        'Your context is laid out like this. First come the problem and, under "### Past steps", every '
        'step anyone has finished, in the order they were finished. Then, under "### Work in progress '
        '(others)", the step each other assistant is writing at this very moment, each one cut off with '
        f'{CUT_MARKER} where its author is still typing. Last, under "### Work in progress (own)", your own '
        "current step, which you continue."
    ),
    "contiguous": (
        "Your context is laid out like this. After the problem come the other assistants' workspaces, "
        f"each cut off with {CUT_MARKER} where its author is still typing, and then your own workspace, "
        "which you continue. Everything the others write appears in their workspaces as they write it."
    ),
    "interleaved": (
        'Your context is laid out like this. After the problem, under "### Past steps", come the steps '
        "everyone has finished, in the order they were finished; your own current step comes last. You see "
        "another assistant's step only once it is finished."
    ),
}

FEW_SHOT = (
    'Here is how a good start looks for two assistants on "How many positive divisors does 360 have?":\n\n'
    "**Alice [1]:** Hi, I'm Alice. Plan: I factor 360, Bob counts divisors from the factorisation.\n\n"
    "**Bob [1]:** Hi, I'm Bob. Agreed, I will wait for Alice's factorisation.\n\n"
    "**Alice [2]:** 360 = 2^3 * 3^2 * 5.\n\n"
    "**Bob [2]:** Then the count is (3+1)(2+1)(1+1) = 24. Quick check with 12 = 2^2 * 3: (2+1)(1+1) = 6, "
    "and 12 has 1, 2, 3, 4, 6, 12. Good.\n\n"
    "**Alice [3]:** I agree: \\boxed{24}.\n\n"
    "And when two assistants notice they are doing the same thing:\n\n"
    "**Bob [4]:** Quick check: am I repeating work someone else is already doing? (yes/no): yes, Alice is "
    "also expanding the square. I will check the boundary case instead.\n\n"
)


@dataclass
class Prompts:
    """The texts of one run: names, layout and options."""

    names: tuple[str, ...]
    layout: str = "combined"
    few_shot: bool = True

    def shared_prompt(self, problem: str) -> str:
        """The prompt every worker shares: who is who, the layout, the rules, examples, the problem."""
        names = ", ".join(self.names)
        text = (
            f"You are one of {len(self.names)} assistants ({names}) solving the same problem at the same time. "
            "Each of you writes in turn, token by token, and sees the others' text as it is written.\n\n"
            f"{LAYOUT_TEXT[self.layout]}\n\n"
            "Work as a team: agree on a plan early, split the work instead of repeating it, check each other's "
            "results, and say so when you change direction. Write short steps (a few sentences) separated by "
            "blank lines. Whoever is sure of the final answer writes it as \\boxed{answer}; then everyone stops."
        )
        if self.few_shot:
            text += "\n\n" + FEW_SHOT
        else:
            text += "\n\n"
        return text + f"Problem: {problem.strip()}\n\n"

    def step_prefix(self, name: str, index: int) -> str:
        return f"**{name} [{index}]:** "

    def opening(self, name: str) -> str:
        if name == self.names[0]:
            return f"Hi, I'm {name}. Here is how we can split the work: "
        return f"Hi, I'm {name}. "

    def workspace_header(self, name: str) -> str:
        return f"**{name}'s workspace:**\n\n"

    def pieces(self) -> list[str]:
        """Every fixed piece of text, for :func:`check_tokenizer`."""
        return [
            HISTORY_HEADER,
            OTHERS_HEADER,
            OWN_HEADER,
            SEPARATOR,
            CHECK_QUESTION,
            FINISHER_SUFFIX,
            "\\boxed{}",
        ] + [self.step_prefix(n, 1) for n in self.names]


def check_tokenizer(tokenizer, pieces: list[str]) -> None:
    """Raise ``ValueError`` if the tokenizer cannot encode and decode back a piece the prompts need."""
    for text in pieces:
        ids = tokenizer.encode(text, add_special_tokens=False)
        back = tokenizer.decode(ids)
        if back != text:
            raise ValueError(
                f"the tokenizer cannot represent the prompt text {text!r} (it decodes back as {back!r}); "
                "hogwild needs a tokenizer that round-trips plain text, '\\n\\n', '**', '<...>' and '\\boxed{}'"
            )
