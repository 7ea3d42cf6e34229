"""Which Transformers model class serves each export task."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str
    auto_class: str  # the transformers Auto* class that loads the model for this task
    description: str


TASKS: dict[str, Task] = {
    "feature-extraction": Task(
        "feature-extraction", "AutoModel", "hidden states (and the pooled output) of the encoder"
    ),
}


def resolve_task(requested: str) -> Task:
    """The task to export: `requested`, or for "auto" the one that fits the model.

    Every encoder checkpoint (a *ForMaskedLM or *ForSequenceClassification one too) loads into its
    base model, so until more tasks are supported "auto" resolves to feature-extraction.
    """
    if requested == "auto":
        return TASKS["feature-extraction"]
    if requested not in TASKS:
        raise ValueError(
            f"unsupported task {requested!r}; this version exports: {', '.join(TASKS)} (or auto)"
        )
    return TASKS[requested]
