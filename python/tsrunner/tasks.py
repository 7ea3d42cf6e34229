"""Which Transformers model class serves each export task, and how "auto" picks a task."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str
    auto_class: str  # the transformers Auto* class that loads the model for this task
    description: str
    has_labels: bool = False  # outputs are scores over config.id2label
    pairs: bool = False  # dummy text is (question, context) style pairs
    choices: bool = False  # inputs carry a choices dimension: [batch, choices, sequence]
    decoder: bool = False  # encoder-decoder forward with decoder_input_ids


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            "feature-extraction",
            "AutoModel",
            "hidden states (and the pooled output); the encoder of an encoder-decoder model",
        ),
        Task("fill-mask", "AutoModelForMaskedLM", "vocabulary logits at every position"),
        Task(
            "text-classification",
            "AutoModelForSequenceClassification",
            "one score per label for each text (or text pair)",
            has_labels=True,
            pairs=True,
        ),
        Task(
            "token-classification",
            "AutoModelForTokenClassification",
            "one score per label for each token",
            has_labels=True,
        ),
        Task(
            "question-answering",
            "AutoModelForQuestionAnswering",
            "answer start and end logits over the context",
            pairs=True,
        ),
        Task(
            "multiple-choice",
            "AutoModelForMultipleChoice",
            "one score per choice",
            pairs=True,
            choices=True,
        ),
        Task(
            "causal-lm", "AutoModelForCausalLM", "next-token logits of one forward pass, no cache"
        ),
        Task(
            "text2text",
            "AutoModelForSeq2SeqLM",
            "decoder logits of an encoder-decoder forward with decoder_input_ids, no cache",
            decoder=True,
        ),
        Task(
            "image-classification",
            "AutoModelForImageClassification",
            "one score per label for each image",
            has_labels=True,
        ),
    )
}

# Suffixes of Transformers architecture names (config.architectures), most specific first.
_ARCHITECTURE_SUFFIXES = (
    ("ForMaskedLM", "fill-mask"),
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMultipleChoice", "multiple-choice"),
    ("ForCausalLM", "causal-lm"),
    ("LMHeadModel", "causal-lm"),
    ("ForConditionalGeneration", "text2text"),
    ("ForImageClassification", "image-classification"),
)


def task_for_architecture(architecture: str) -> str:
    """The task of a Transformers architecture name; base models and heads tsrunner does not
    export (e.g. *ForPreTraining) give feature-extraction, which loads the base model."""
    for suffix, task in _ARCHITECTURE_SUFFIXES:
        if architecture.endswith(suffix):
            return task
    return "feature-extraction"


def resolve_task(requested: str, architectures: list[str] | None = None) -> Task:
    """The task to export: `requested`, or for "auto" the one the config's architectures name."""
    if requested == "auto":
        return TASKS[
            task_for_architecture(architectures[0]) if architectures else "feature-extraction"
        ]
    if requested not in TASKS:
        raise ValueError(
            f"unsupported task {requested!r}; this version exports: {', '.join(TASKS)} (or auto)"
        )
    return TASKS[requested]
