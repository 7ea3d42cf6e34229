"""The accuracy gate: does a lower-precision model keep the float32 model's answers on real text?

An absolute tolerance cannot judge int8 or bf16 (outputs differ from float32 by far more than
1e-4 while meaning the same thing), so the gate asks what users ask, on GATE_SENTENCES real
sentences (Python's own docstrings, sample_text; not the calibration sentences):
- embeddings: the cosine between the float32 and the low-precision sentence vector (mean-pooled
  over real tokens), its mean and minimum, and whether each sentence's nearest neighbour among
  the others stays the same;
- classification: whether each sentence's label stays the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch

from . import sample_text

GATE_SENTENCES = 2000
GATE_OFFSET = 1000
GATE_BATCH = 32
KINDS = ("embedding", "labels")


@dataclass(frozen=True)
class Gate:
    """The bars a model must reach; `parse` takes a lower gate from the command line."""

    mean_cosine: float = 0.999
    min_cosine: float = 0.995
    nearest_neighbour: float = 0.99  # share of sentences whose nearest neighbour is unchanged
    labels: float = 0.995  # share of sentences whose label is unchanged (classification)

    @classmethod
    def parse(cls, text: str | dict | None) -> Gate:
        """ "mean_cosine=0.998,nearest_neighbour=0.95" (or a dict): the bars named, the rest
        at their defaults. A ValueError names what is wrong."""
        if text is None:
            return cls()
        if isinstance(text, str):
            pairs = {}
            for part in filter(None, (p.strip() for p in text.split(","))):
                name, equals, value = part.partition("=")
                if not equals:
                    raise ValueError(f"accuracy gate: expected NAME=VALUE, got {part!r}")
                pairs[name.strip()] = value.strip()
            text = pairs
        known = {f.name for f in fields(cls)}
        values = {}
        for name, value in text.items():
            if name not in known:
                raise ValueError(
                    f"accuracy gate: unknown bar {name!r} (expected {', '.join(sorted(known))})"
                )
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"accuracy gate: {name} must be a number, not {value!r}") from None
            if not -1.0 <= number <= 1.0:
                raise ValueError(f"accuracy gate: {name} must be within [-1, 1], not {number}")
            values[name] = number
        return cls(**values)


@dataclass
class GateResult:
    """What a model measured against its gate."""

    kind: str
    sentences: int
    mean_cosine: float
    min_cosine: float
    nearest_neighbour: float | None = None
    labels: float | None = None
    gate: Gate = field(default_factory=Gate)

    @property
    def passed_cosine(self) -> bool:
        return self.mean_cosine >= self.gate.mean_cosine and self.min_cosine >= self.gate.min_cosine

    @property
    def passed(self) -> bool:
        if self.kind == "labels":
            return self.labels is not None and self.labels >= self.gate.labels
        return self.passed_cosine and (
            self.nearest_neighbour is None or self.nearest_neighbour >= self.gate.nearest_neighbour
        )

    def misses(self) -> list[str]:
        """Each bar missed, with its number: what an ExportError says."""
        checks = []
        if self.kind == "labels":
            checks.append(("labels unchanged", self.labels, self.gate.labels))
        else:
            checks += [
                ("cosine mean", self.mean_cosine, self.gate.mean_cosine),
                ("cosine min", self.min_cosine, self.gate.min_cosine),
                ("same nearest neighbour", self.nearest_neighbour, self.gate.nearest_neighbour),
            ]
        return [
            f"{name} {_below(value, bar)} (needs {bar})"
            for name, value, bar in checks
            if value is not None and value < bar
        ]

    def summary(self) -> str:
        parts = [f"cosine mean {self.mean_cosine:.4f}, min {self.min_cosine:.4f}"]
        if self.nearest_neighbour is not None:
            parts.append(f"same nearest neighbour {self.nearest_neighbour:.2%}")
        if self.labels is not None:
            parts.append(f"labels unchanged {self.labels:.2%}")
        verdict = "passed" if self.passed else "MISSED"
        return f"{', '.join(parts)} on {self.sentences} sentences: gate {verdict}"

    def to_json(self) -> dict:
        record = {k: v for k, v in asdict(self).items() if k != "gate"}
        return {**record, "gate": asdict(self.gate), "passed": self.passed}


def _below(value: float, bar: float) -> str:
    """`value` with as many decimals as it takes to show it is below `bar` (4 at least)."""
    for decimals in range(4, 13):
        text = f"{value:.{decimals}f}"
        if float(text) < bar:
            return text
    return repr(value)


def gate_sentences(count: int | None = None) -> list[str]:
    return sample_text.sample(GATE_SENTENCES if count is None else count, offset=GATE_OFFSET)


def _per_sequence(output: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """One vector per sequence: token outputs mean-pooled over real tokens (what a sentence
    embedding is), anything else flattened."""
    output = output.double()
    if mask is not None and output.dim() >= 3 and output.shape[:2] == mask.shape:
        weights = mask.to(output.dtype).reshape(*mask.shape, *([1] * (output.dim() - 2)))
        output = (output * weights).sum(1) / weights.sum(1).clamp(min=1)
    return output.reshape(output.shape[0], -1)


def vectors(model, batches: list[dict[str, torch.Tensor]], kind: str) -> torch.Tensor:
    """One float64 vector per sentence from `model`'s first output, in batch order."""
    assert kind in KINDS, kind
    rows = []
    with torch.inference_mode():
        for batch in batches:
            output = model(*batch.values())[0]
            rows.append(_per_sequence(output, batch.get("attention_mask")))
    return torch.cat(rows)


def _nearest(vectors: torch.Tensor) -> torch.Tensor:
    unit = torch.nn.functional.normalize(vectors, dim=1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(-2.0)
    return similarity.argmax(1)


def compare(
    reference: torch.Tensor,
    model,
    batches: list[dict[str, torch.Tensor]],
    kind: str,
    gate: Gate,
) -> GateResult:
    """`model` against the float32 `reference` vectors (vectors() of the float32 model)."""
    got = vectors(model, batches, kind)
    return judge(reference, got, kind, gate)


def judge(reference: torch.Tensor, got: torch.Tensor, kind: str, gate: Gate) -> GateResult:
    cosine = torch.nn.functional.cosine_similarity(reference, got, dim=1)
    cosine = torch.nan_to_num(cosine, nan=-1.0)  # a NaN output fails the gate
    result = GateResult(
        kind=kind,
        sentences=int(cosine.numel()),
        mean_cosine=float(cosine.mean()),
        min_cosine=float(cosine.min()),
        gate=gate,
    )
    if kind == "labels":
        result.labels = float((reference.argmax(1) == got.argmax(1)).double().mean())
    elif cosine.numel() > 1:
        same = _nearest(reference) == _nearest(torch.nan_to_num(got))
        result.nearest_neighbour = float(same.double().mean())
    return result
