"""Regenerates docs/support-matrix-pt2.md: which families and tasks export to an AOTInductor `.pt2`.

    python scripts/support_matrix_pt2.py [--keep] [FAMILY ...]   (make support-matrix-pt2: all)

Every (family, task) of tests/data/tiny_models.py, as the TorchScript support matrix has them,
is exported with `--format aoti --max-length 16` and run through the C++ runner against the
eager model at an untraced shape. Each compile takes about a minute on 2 shared cores (Inductor
compiles C++ for every model), so this is its own make target, not part of `make test`; the
file is rewritten after every row, and --keep reuses the rows it already has (a sweep stopped
half-way goes on where it stopped).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

from support_matrix import ROOT, _load  # scripts/ is on sys.path when run as a script

MATRIX = ROOT / "docs" / "support-matrix-pt2.md"


def _cases(tiny_models, families: list[str]) -> list[tuple[str, str]]:
    return [(f, task) for f, task in tiny_models.cases() if not families or f in families]


def _measured_rows() -> dict[tuple[str, str], tuple[str, ...]]:
    """The rows docs/support-matrix-pt2.md already has, by (family, task)."""
    rows = {}
    for key, (family, task, exported, why, parity, seconds) in (
        _load("tiny_models").read_pt2_matrix(MATRIX).items()
    ):
        shape = "no" if exported == "no" else why
        rows[key] = (family, task, shape, why if shape == "no" else parity,
                     "" if seconds == "-" else seconds)  # fmt: skip
    return rows


def _cpu() -> str:
    """The CPU's model name and family/model numbers, as lscpu names them."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return "CPU unknown"
    return (
        f"{fields.get('model name', '?')}, family {fields.get('cpu family', '?')} model "
        f"{fields.get('model', '?')}, {os.cpu_count()} cores"
    )


def _torch_version() -> str:
    import torch

    return torch.__version__


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return (text[:197] + "...") if len(text) > 200 else text


def _run(tiny_models, fixtures, family: str, task: str, workdir: Path) -> tuple[str, str, str]:
    """(contract, C++ parity, seconds) or the one-line error."""
    import tsrunner

    directory = tiny_models.make_model(
        family, task, workdir / f"{family}-{task}", tokenizer_source=fixtures.minilm_directory()
    )
    path = workdir / f"{family}-{task}.pt2"
    is_image = tiny_models.family(family).config_class == "ViTConfig"
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = tsrunner.export(
                directory, path, max_length=None if is_image else tiny_models.MAX_LENGTH
            )
    except Exception as error:  # every failure is a row with its one-line reason
        return "no", _one_line(error), ""
    load = os.getloadavg()[0]
    seconds = f"{time.perf_counter() - started:.0f} (load {load:.1f})"
    manifest = report.manifest
    contract = manifest["shape_contract"]
    shape = (
        f"dynamic {contract['min_sequence']}..{contract['max_sequence']}"
        if contract["kind"] == "dynamic"
        else f"fixed {contract['max_sequence']}"
    )
    if "image" in manifest:
        shape = "any batch, fixed image size"
    inputs = tiny_models.parity_inputs(manifest)
    try:
        got = tsrunner.Runner(path).run(inputs)
    except Exception as error:  # the row says why
        return shape, f"NO: the runner failed: {_one_line(error)}", seconds
    want = tiny_models.eager_outputs(directory, manifest, inputs)
    parity = max(
        float((got[o["name"]].double() - w.double()).abs().max())
        for o, w in zip(manifest["outputs"], want, strict=True)
    )
    ok = "yes" if parity <= tiny_models.PARITY_ATOL else "NO"
    return shape, f"{ok} ({parity:.1e})", seconds


def main(argv: list[str]) -> int:
    _load("tokenizer_fixtures")
    tiny_models = _load("tiny_models")
    fixtures = _load("make_fixtures")
    keep = "--keep" in argv
    argv = [arg for arg in argv if arg != "--keep"]
    measured = _measured_rows() if keep else {}
    rows: list[tuple[str, ...]] = []
    cases = _cases(tiny_models, argv)
    with tempfile.TemporaryDirectory() as workdir:
        for family, task in cases:
            if (family, task) in measured:
                rows.append(measured[(family, task)])
                continue
            result = _run(tiny_models, fixtures, family, task, Path(workdir))
            print(f"{family:12} {task:22} {' | '.join(result)}", file=sys.stderr, flush=True)
            rows.append((family, task, *result))
            _write(rows, argv, done=len(rows) == len(cases))
    _write(rows, argv, done=True)
    print(f"wrote {MATRIX}", file=sys.stderr)
    return 0


def _write(rows: list[tuple[str, ...]], argv: list[str], done: bool) -> None:
    """The matrix so far: a sweep stopped half-way still leaves its measured rows."""
    lines = [
        "# Support matrix: AOTInductor `.pt2` (`--format aoti`)",
        "",
        "Generated by `make support-matrix-pt2` (`python scripts/support_matrix_pt2.py`): every",
        "family and task of `tests/data/tiny_models.py` (2 layers, hidden size 32), as the",
        "TorchScript matrix has them, exported with `--format aoti --max-length 16` and run",
        "through the C++ runner against the eager model at an untraced shape (batch 3, 5",
        "tokens, a padded row; atol 1e-4). The TorchScript matrix is",
        "[support-matrix.md](support-matrix.md). Compile seconds are wall time on the machine",
        "that ran it, with its 1-minute load average beside them",
        f"({_cpu()}; Inductor's C++ kernels, oneDNN for the GEMMs; torch {_torch_version()};",
        f"last written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).",
        "",
        *(
            [
                f"This run covered {', '.join(argv)} only (`python scripts/support_matrix_pt2.py "
                f"{' '.join(argv)}`): a compile took minutes on the shared 2 cores.",
                "",
            ]
            if argv
            else []
        ),
        *([] if done else ["**Incomplete: the sweep is still running or was stopped.**", ""]),
        f"{sum(row[2] != 'no' for row in rows)} of {len(rows)} rows "
        f"({len({row[0] for row in rows})} families) export to `.pt2`.",
        "",
        "| family | task | exports to .pt2 | shape contract / why not | C++ parity (max abs diff) "
        "| export + compile s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for family, task, shape, parity, seconds in rows:
        exported = "no" if shape == "no" else "yes"
        lines.append(
            f"| {family} | {task} | {exported} | {parity if shape == 'no' else shape} | "
            f"{'-' if shape == 'no' else parity} | {seconds or '-'} |"
        )
    lines += [
        "",
        "Also proven by `tests/python/test_aoti.py` (in `make test`): the tiny BERT",
        "feature-extraction model with its tokenizer at `--max-length 64`: dynamic 1..64, C++",
        "runner bit-for-bit equal to `torch._inductor.aoti_load_package` at one thread, both",
        "within atol of eager at 1x1, 2x6, 3x17 and 1x64, cosine >= 0.99999 against the `.pt`",
        "export of the same model on real sentences, and runs from six threads at once on one",
        "Runner equal to the serial runs.",
        "",
        "Refused by design in this release (one-line errors at export, tested): `--quantize int8`",
        "(dynamically quantized Linear layers do not go through torch.export), `--buckets` (one",
        "dynamic graph replaces them), `--device cuda`, non-x86-64 CPUs.",
    ]
    MATRIX.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
