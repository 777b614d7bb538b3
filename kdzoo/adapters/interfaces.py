"""What an adapter offers the distillers that use it.

A distiller names an interface, never an adapter class, in its ``adapter_needs``
(:class:`~kdzoo.distillers.base.AdapterNeed`); :meth:`BaseDistiller.bind` binds whichever adapter on the right
model provides it. An adapter provides an interface by subclassing it (``class MyPrompts(FeedbackPrompts,
BaseAdapter)``) or by registering itself (``FeedbackPrompts.register(MyPrompts)``); a subclass that leaves out
one of the interface's abstract methods cannot be instantiated. docs/adding_an_adapter.md shows one.
"""
from abc import ABC, abstractmethod


class AdapterInterface(ABC):
    """Base of the interfaces below: each is what one kind of method exchanges with its adapter, nothing more."""


class FeedbackPrompts(AdapterInterface):
    """Prompts in a teacher that the distiller feeds back after each step (FOFA's teacher side, AFP).

    The distiller calls :meth:`configure` at bind time, :meth:`build` once the teacher's taps were probed,
    and :meth:`set_feedback` after computing its losses in training mode.
    """

    @abstractmethod
    def configure(self, code_exact):
        """Take the distiller's switch for the official code's behaviour, so one switch covers both sides."""

    @abstractmethod
    def build(self, feedback_shapes):
        """Create the prompts; ``feedback_shapes``: ``{'stage<k>': (C, H, W)}`` of the feedback to expect."""

    @abstractmethod
    def set_feedback(self, feedback):
        """Store ``{'stage<k>': (B, C, H, W)}`` (detached) for the next forward of the teacher."""


class PromptOutputs(AdapterInterface):
    """Prompt tokens inside a teacher whose outputs the distiller reads beside the teacher's own tokens
    (URFM's teacher side, APT).

    ``prompted_paths``: the teacher module paths (unwrapped model) whose prompt outputs are kept.
    """

    prompted_paths = ()

    @abstractmethod
    def last_prompt_outputs(self, path):
        """(B, t, d) prompt outputs at module ``path`` in the latest teacher forward; None when that forward
        ran without prompts."""


class TokenHeads(AdapterInterface):
    """Extra tokens in the student, each with its own classifier head (CivT's CONV and INV tokens)."""

    @property
    @abstractmethod
    def tokens_tap(self):
        """The student tap (a module path) whose (B, N, D) output the heads read."""

    @property
    @abstractmethod
    def num_classes(self):
        """Classes each head predicts."""

    @abstractmethod
    def token_logits(self, tokens):
        """``{token name: (B, num_classes) logits}`` from the output of :attr:`tokens_tap`."""
