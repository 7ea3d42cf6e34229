"""The `tsrunner` command: export models and inspect exports.

Exit codes: 0 ok, 1 runtime failure (including an export that fails validation), 2 usage error
or bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM


class _Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that `finally` blocks (the atomic writer's
    clean-up of its temporary file) run before the process exits."""


def _raise_terminated(signum, frame):
    raise _Terminated


def _int_at_least(minimum: int):
    """An argparse type: an integer no smaller than `minimum`."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _bucket_list(text: str) -> list[int]:
    try:
        lengths = [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected lengths like 32,64,128, not {text!r}") from None
    if min(lengths) < 1:
        raise argparse.ArgumentTypeError(f"lengths must be at least 1, not {min(lengths)}")
    return lengths


def _add_triton_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Triton model repository")
    group.add_argument("--triton-name", help="model name in the repository (default: file stem)")
    group.add_argument(
        "--max-batch-size",
        type=_non_negative_int,
        default=8,
        help="Triton max_batch_size (default 8; 0 disables Triton's batching)",
    )
    group.add_argument(
        "--dynamic-batching", action="store_true", help="enable Triton's dynamic batcher"
    )
    group.add_argument(
        "--instances", type=_positive_int, default=1, help="model instances (default 1)"
    )


def _write_triton(args: argparse.Namespace, export_path: str) -> None:
    from .triton import TritonOptions, write_model_repository

    options = TritonOptions(
        max_batch_size=args.max_batch_size,
        dynamic_batching=args.dynamic_batching,
        instances=args.instances,
    )
    model_dir = write_model_repository(
        export_path, args.repository, name=args.triton_name, options=options
    )
    print(f"Wrote Triton model repository entry {model_dir} (config.pbtxt, 1/model.pt)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .export_options import DTYPE_ALIASES, DTYPES, SHAPE_MODES
    from .tasks import TASKS

    parser = argparse.ArgumentParser(
        prog="tsrunner",
        description="Export Hugging Face Transformers models to validated TorchScript.",
        epilog="Exit codes: 0 ok, 1 runtime failure, 2 usage error or bad input.",
    )
    parser.add_argument("--version", action="version", version=f"tsrunner {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = commands.add_parser(
        "export",
        help="trace a model to one TorchScript .pt (or an AOTInductor .pt2)",
        description="Trace MODEL (a local model directory or a hub id) to a validated "
        "TorchScript archive, or with --format aoti to an AOTInductor .pt2 package.",
    )
    export.add_argument("model", metavar="MODEL", help="local model directory (config.json, ...)")
    export.add_argument("-o", "--output", required=True, help="the .pt (or .pt2) file to write")
    export.add_argument("--task", default="auto", choices=["auto", *TASKS])
    export.add_argument(
        "--max-length",
        type=_positive_int,
        help="longest sequence (tokens) the export takes; default: the model's usable maximum "
        "(sentence-transformers' max_seq_length, the position embeddings), at most 512",
    )
    export.add_argument(
        "--batch-size", type=_positive_int, default=2, help="batch size of the trace (default 2)"
    )
    export.add_argument(
        "--shapes",
        choices=SHAPE_MODES,
        default="auto",
        help="auto: dynamic if validation passes at every shape, else fixed at --max-length",
    )
    export.add_argument(
        "--atol",
        type=_positive_float,
        help="validation tolerance (default 1e-4 for float32, 1e-2 float16, 5e-2 bfloat16)",
    )
    export.add_argument("--revision", help="hub revision (branch, tag or commit) of a hub id")
    export.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow models whose code lives in the model repository (runs that code!)",
    )
    export.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    export.add_argument(
        "--dtype",
        default="float32",
        choices=[*DTYPES, *DTYPE_ALIASES],
        help="float32 (default), float16 (fp16, half) or bfloat16 (bf16); half precision is "
        "slow on CPUs without half kernels",
    )
    export.add_argument(
        "--buckets",
        type=_bucket_list,
        help="comma-separated lengths, e.g. 32,64,128: one traced method per length in one "
        "archive (weights stored once); the runner pads to the smallest that fits",
    )
    export.add_argument(
        "--allow-untrained-head",
        action="store_true",
        help="export a head task even when the checkpoint lacks the head's weights (they are "
        "random: only for testing)",
    )
    export.add_argument(
        "--untie-weights",
        action="store_true",
        help="store tied parameters (e.g. embeddings and LM-head decoder) as independent copies",
    )

    export.add_argument(
        "--quantize",
        choices=["int8"],
        help="int8: int8 Linear layers (per-channel weights, per-token activations), gated on "
        "2,000 real sentences against float32 (docs/benchmarks.md, int8)",
    )
    export.add_argument(
        "--accuracy-gate",
        metavar="BARS",
        help="accept a lower int8 accuracy gate, e.g. mean_cosine=0.998,min_cosine=0.99,"
        "nearest_neighbour=0.97 (defaults 0.999, 0.995, 0.99; labels=0.995 for classifiers)",
    )
    export.add_argument(
        "--backend",
        choices=["jit", "neuron"],
        default="jit",
        help="jit: torch.jit.trace (default); neuron: torch_neuronx.trace for AWS Inferentia/"
        "Trainium (needs the Neuron SDK; fixed shapes only; untested here)",
    )
    export.add_argument(
        "--format",
        choices=["torchscript", "aoti"],
        help="torchscript: one TorchScript .pt (default); aoti: an AOTInductor .pt2 package "
        "compiled for this CPU (implied by an output ending in .pt2)",
    )
    export.add_argument(
        "--isa",
        choices=["native", "avx2"],
        default="native",
        help="aoti only: compile for this CPU's instruction set (default) or for any x86-64 CPU "
        "with AVX2 and FMA (portable, slower)",
    )
    export.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress lines (shown on a terminal's stderr) and no validation report; "
        "errors and warnings still go to stderr",
    )
    export.add_argument(
        "--triton-repo",
        metavar="DIR",
        help="also write a Triton model repository: DIR/<name>/config.pbtxt, DIR/<name>/1/model.pt",
    )
    _add_triton_options(export)

    triton = commands.add_parser(
        "triton",
        help="write a Triton model repository for an export",
        description="Write DIR/<name>/config.pbtxt and DIR/<name>/1/model.pt for MODEL_PT, "
        "ready for `tritonserver --model-repository DIR` (PyTorch/LibTorch backend).",
    )
    triton.add_argument("path", metavar="MODEL_PT")
    triton.add_argument("repository", metavar="DIR")
    _add_triton_options(triton)

    adopt = commands.add_parser(
        "adopt",
        help="make a full archive of an existing TorchScript trace",
        description="Wrap TRACE (a TorchScript module without a tsrunner manifest, such as the "
        "traced_bert.pt of the original Export to TorchScript recipe) into -o OUT.pt with "
        "MODEL's manifest, tokenizer and content digest, after checking the trace against the "
        "eager model at several shapes, as `tsrunner export` checks its own traces. Inputs keep "
        "the trace's argument names.",
    )
    adopt.add_argument("trace", metavar="TRACE")
    adopt.add_argument(
        "--model",
        required=True,
        metavar="MODEL",
        help="the model directory the trace was made from",
    )
    adopt.add_argument("-o", "--output", required=True, help="the .pt file to write")
    adopt.add_argument("--task", default="auto", choices=["auto", *TASKS])
    adopt.add_argument("--max-length", type=_positive_int, help="as for export")
    adopt.add_argument("--batch-size", type=_positive_int, default=2, help="as for export")
    adopt.add_argument("--shapes", choices=SHAPE_MODES, default="auto", help="as for export")
    adopt.add_argument("--atol", type=_positive_float, help="as for export")
    adopt.add_argument("-q", "--quiet", action="store_true", help="as for export")

    info = commands.add_parser("info", help="print the manifest of an export")
    info.add_argument("path", metavar="MODEL_PT")
    info.add_argument("--json", action="store_true", help="print the manifest as JSON")
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"tsrunner: warning: {message}", file=sys.stderr)


def _run_export(args: argparse.Namespace) -> int:
    import warnings

    from .exporter import export
    from .progress import terminal_progress

    if args.triton_repo and (args.format == "aoti" or str(args.output).endswith(".pt2")):
        raise ValueError(
            "--triton-repo needs a TorchScript export (Triton's pytorch_libtorch backend); "
            "it cannot be combined with a .pt2 (--format aoti)"
        )
    with warnings.catch_warnings():
        # The report states what matters; warnings go to stderr as one line each.
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _show_warning
        report = export(
            args.model,
            args.output,
            task=args.task,
            max_length=args.max_length,
            batch_size=args.batch_size,
            shapes=args.shapes,
            atol=args.atol,
            untie_weights=args.untie_weights,
            buckets=args.buckets,
            revision=args.revision,
            trust_remote_code=args.trust_remote_code,
            device=args.device,
            dtype=args.dtype,
            quantize=args.quantize,
            accuracy_gate=args.accuracy_gate,
            backend=args.backend,
            allow_untrained_head=args.allow_untrained_head,
            format=args.format,
            isa=args.isa,
            progress=terminal_progress(quiet=args.quiet),
        )
    if not args.quiet:
        print(report.summary())
    if args.triton_repo:
        args.repository = args.triton_repo
        _write_triton(args, args.output)
    return 0


def _run_adopt(args: argparse.Namespace) -> int:
    import warnings

    from .adopt import adopt
    from .progress import terminal_progress

    with warnings.catch_warnings():  # one line each on stderr, as export's
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _show_warning
        report = adopt(
            args.trace,
            args.model,
            args.output,
            task=args.task,
            max_length=args.max_length,
            batch_size=args.batch_size,
            shapes=args.shapes,
            atol=args.atol,
            progress=terminal_progress(quiet=args.quiet),
        )
    if not args.quiet:
        print(report.summary())
    return 0


def _run_info(args: argparse.Namespace) -> int:
    from . import verify_archive
    from .manifest import describe, plain_module_note, read_manifest

    manifest = read_manifest(args.path)
    if manifest.get("plain_module"):
        print(f"tsrunner: note: {plain_module_note(args.path)}", file=sys.stderr)
    if args.json:
        print(json.dumps(manifest, indent=2))
    else:
        from . import auto_kernel_path, cpu_model

        print(args.path)
        print(describe(manifest), end="")
        # The content digest: what --expect-sha256 / expected_sha256 take (docs/security.md).
        print(f"  {'sha256':<12}{verify_archive(args.path)}")
        print(f"machine     {cpu_model()}; kernel path auto: {auto_kernel_path()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .errors import Error, InvalidInput, LoadError

    previous_handler = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        if args.command == "export":
            return _run_export(args)
        if args.command == "adopt":
            return _run_adopt(args)
        if args.command == "triton":
            _write_triton(args, args.path)
            return 0
        return _run_info(args)
    except (ValueError, InvalidInput, LoadError) as error:
        print(f"tsrunner: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (Error, OSError, RuntimeError) as error:
        print(f"tsrunner: error: {error}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        print("tsrunner: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print("tsrunner: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as error:  # a bug: still one line; TSRUNNER_TRACEBACK=1 shows where
        if os.environ.get("TSRUNNER_TRACEBACK"):
            raise
        reason = " ".join(str(error).split())[:300]
        print(
            f"tsrunner: internal error: {type(error).__name__}: {reason} (please report it; "
            "TSRUNNER_TRACEBACK=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_RUNTIME
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


if __name__ == "__main__":
    sys.exit(main())
