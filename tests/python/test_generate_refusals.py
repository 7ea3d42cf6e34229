"""What HF generate would do and this runner does not is refused in one line, never answered
differently: a model whose saved generation_config.json asks for beam sampling (do_sample with
num_beams > 1), or sets a setting HF applies and the runner does not implement. Refused through
Runner.generate, tsrun and tsrun serve; the export and `tsrunner info` / `tsrun info` say so. The
settings the runner implements, saved in generation_config.json, still give HF generate's tokens
(and a setting HF ignores in a request's decoding mode is ignored here too)."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
import torch

import tsrunner
from archive_tools import resave
from serve_process import Server
from tsrunner import _core

DATA = Path(__file__).resolve().parents[1] / "data"
PROMPT = "If the file does not exist, raise an error and"
PROMPTS = ["The module provides", "Return a new list", PROMPT, "A"]

# generation_config.json settings HF 5 generate applies and the runner does not: the value set,
# a request HF would apply it to, and one it would not (None: it applies to every request).
UNSUPPORTED = [
    ("guidance_scale", 1.5, {}, None),
    ("encoder_repetition_penalty", 1.2, {}, None),
    ("encoder_no_repeat_ngram_size", 2, {}, None),
    ("watermarking_config", {"greenlist_ratio": 0.25}, {}, None),
    # Applied (token_biases.cc), but not values HF takes: refused as HF refuses them.
    ("sequence_bias", [[[5], 2]], {}, None),
    ("bad_words_ids", [[5, -1]], {}, None),
    ("suppress_tokens", "5", {}, None),
    ("begin_suppress_tokens", [[5]], {}, None),
    ("exponential_decay_length_penalty", [2], {}, None),
    ("max_time", 10.0, {}, None),
    ("stop_strings", ["x"], {}, None),
    ("token_healing", True, {}, None),
    ("force_words_ids", [[5]], {}, None),
    ("dola_layers", "high", {}, {"num_beams": 2}),
    ("penalty_alpha", 0.6, {}, {"num_beams": 2}),  # contrastive search with the default top_k 50
    ("num_beam_groups", 2, {"num_beams": 2}, {}),
    ("renormalize_logits", True, {"num_beams": 2}, {}),
    ("typical_p", 0.5, {"do_sample": True}, {}),
    ("epsilon_cutoff", 0.1, {"do_sample": True}, {}),
    ("eta_cutoff", 0.1, {"do_sample": True}, {}),
    ("top_h", 0.5, {"do_sample": True}, {}),
]
# HF's own defaults for the same settings: nothing to refuse.
HF_DEFAULTS = {
    "guidance_scale": 1.0, "encoder_repetition_penalty": 1.0, "encoder_no_repeat_ngram_size": 0,
    "remove_invalid_values": False, "suppress_tokens": None, "token_healing": False,
    "penalty_alpha": None, "num_beam_groups": 1, "renormalize_logits": False, "typical_p": 1.0,
    "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "diversity_penalty": 0.0,
}  # fmt: skip


def _tiny_gpt2(directory: Path, settings: dict) -> Path:
    spec = importlib.util.spec_from_file_location("tiny_decoders", DATA / "tiny_decoders.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make_decoder("gpt2", directory)
    saved = directory / "generation_config.json"
    saved.write_text(json.dumps({**json.loads(saved.read_text()), **settings}))
    return directory


def _hf_generate(directory: Path, prompts: list[str], **params) -> list[list[int]]:
    """HF generate's new tokens per prompt (left padding), cut at the first EOS."""
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    tokenizer.padding_side = "left"
    tokenizer.pad_token = tokenizer.eos_token
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        output = model.generate(**batch, **params)
    return [row[: row.index(0)] if 0 in row else row
            for row in output[:, batch["input_ids"].shape[1] :].tolist()]  # fmt: skip


@pytest.fixture(scope="module")
def beam_sampler(tmp_path_factory):
    """(directory, export, Runner) of a tiny GPT-2 whose generation_config.json asks for HF's
    beam sampling, with settings the runner implements (penalties, lengths) and sampling-only
    settings it does not (typical_p, epsilon_cutoff)."""
    workdir = tmp_path_factory.mktemp("beam-sampler")
    settings = {
        "do_sample": True, "num_beams": 2, "max_new_tokens": 6, "min_new_tokens": 3,
        "repetition_penalty": 1.3, "no_repeat_ngram_size": 2, "top_k": 7, "temperature": 0.5,
        "typical_p": 0.5, "epsilon_cutoff": 0.2, "use_cache": True,
    }  # fmt: skip
    directory = _tiny_gpt2(workdir / "model", settings)
    with pytest.warns(UserWarning) as caught:
        tsrunner.export(directory, workdir / "model.pt", task="causal-lm")
    (warning,) = [str(w.message) for w in caught if "refuses" in str(w.message)]
    assert "do_sample true with num_beams 2 is HF's beam sampling" in warning
    assert (
        "typical_p 0.5 (HF's TypicalLogitsWarper) is not implemented here: requests are refused "
        "when sampling"
    ) in warning
    return directory, workdir / "model.pt", tsrunner.Runner(workdir / "model.pt", threads=1)


SAVED_BEAM_SAMPLING = (
    "do_sample true (the model's default) with num_beams 2 (the model's default) is HF's beam "
    "sampling, which this runner does not do: ask for do_sample false (temperature 0) for beam "
    "search, or num_beams 1 to sample"
)


def test_saved_beam_sampling_is_refused_by_the_runner(beam_sampler):
    _, path, runner = beam_sampler
    with pytest.raises(ValueError) as caught:
        runner.generate(PROMPT)
    assert str(caught.value) == SAVED_BEAM_SAMPLING
    with pytest.raises(
        ValueError, match=r"do_sample true \(the request's\) with num_beams 3 \(the"
    ):
        runner.generate(PROMPT, do_sample=True, num_beams=3)
    text = tsrunner.manifest.describe(tsrunner.read_manifest(path))
    assert "refuses     do_sample true with num_beams 2 is HF's beam sampling" in text
    assert "refuses     typical_p 0.5 (HF's TypicalLogitsWarper)" in text


def test_supported_saved_settings_give_hf_generate_tokens(beam_sampler):
    """The saved penalties, lengths and beams, with sampling-only settings HF ignores when not
    sampling: beam search and greedy decoding give HF generate's tokens."""
    directory, _, runner = beam_sampler
    for params in ({"do_sample": False}, {"do_sample": False, "num_beams": 1}):
        got = runner.generate(PROMPTS, details=True, **params)
        assert [r["token_ids"] for r in got] == _hf_generate(directory, PROMPTS, **params)
    with pytest.raises(ValueError, match=r"sets typical_p 0\.5, which HF generate applies when"):
        runner.generate(PROMPT, num_beams=1)


def test_saved_beam_sampling_is_refused_by_tsrun(beam_sampler, tsrun, tmp_path):
    _, path, runner = beam_sampler
    refused = subprocess.run([tsrun, str(path), "--text", PROMPT], capture_output=True, text=True)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and SAVED_BEAM_SAMPLING in refused.stderr
    greedy = subprocess.run(
        [tsrun, str(path), "--text", PROMPT, "--greedy"], capture_output=True, text=True
    )
    assert greedy.returncode == 0, greedy.stderr
    assert greedy.stdout == runner.generate(PROMPT, do_sample=False) + "\n"
    # --input checks each line alone (Generator::check): the refused line is answered with its
    # error, the other generates.
    lines = tmp_path / "in.jsonl"
    lines.write_text(
        json.dumps({"id": "a", "text": PROMPT})
        + "\n"
        + json.dumps({"id": "b", "text": PROMPT, "do_sample": False})
        + "\n"
    )
    done = subprocess.run(
        [tsrun, str(path), "--input", str(lines), "--output", "-"], capture_output=True, text=True
    )
    first, second = map(json.loads, done.stdout.splitlines())
    assert done.returncode == 2
    assert first == {"id": "a", "line": 1, "error": SAVED_BEAM_SAMPLING}
    assert second["id"] == "b" and second["text"] == runner.generate(PROMPT, do_sample=False)
    info = subprocess.run([tsrun, "info", str(path)], capture_output=True, text=True, check=True)
    assert "refuses     do_sample true with num_beams 2" in info.stdout


def test_saved_beam_sampling_is_refused_by_serve(beam_sampler, tsrun):
    _, path, runner = beam_sampler
    expected = runner.generate(PROMPT, do_sample=False, max_new_tokens=5)
    with Server(tsrun, [path], "--name", "gen") as server:
        status, answer = server.post("/v1/completions", {"prompt": PROMPT, "max_tokens": 5})
        assert status == 400 and answer["error"]["message"] == SAVED_BEAM_SAMPLING
        body = {"prompt": PROMPT, "max_tokens": 5, "temperature": 0}
        status, answer = server.post("/v1/completions", body)
        assert status == 200 and answer["choices"][0]["text"] == expected
        status, answer = server.post("/generate", {"inputs": PROMPT})
        assert status == 422 and answer["error"] == SAVED_BEAM_SAMPLING
        parameters = {"do_sample": False, "max_new_tokens": 5}
        status, answer = server.post("/generate", {"inputs": PROMPT, "parameters": parameters})
        assert status == 200 and answer["generated_text"] == expected


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A tiny GPT-2 export with HF's default generation settings, and its Runner."""
    workdir = tmp_path_factory.mktemp("plain")
    directory = _tiny_gpt2(workdir / "model", {})
    tsrunner.export(directory, workdir / "model.pt", task="causal-lm")
    return workdir / "model.pt", tsrunner.Runner(workdir / "model.pt", threads=1)


def _with_setting(manifest: dict, name: str, value) -> dict:
    edited = copy.deepcopy(manifest)
    edited["generation"]["generation_config"][name] = value
    return edited


@pytest.mark.parametrize(("name", "value", "applies", "spared"), UNSUPPORTED)
def test_each_unsupported_setting_is_refused(plain, tmp_path, name, value, applies, spared):
    """The export of a model saving `name` (its manifest's generation_config, as the exporter
    writes it) refuses the requests HF would apply it to, and answers the others as HF does."""
    path, runner = plain
    manifest = _with_setting(runner.manifest, name, value)
    (refusal,) = _core.generation_refusals(json.dumps(manifest))
    assert refusal.startswith(f"{name} {json.dumps(value, separators=(',', ':'))} (HF's ")
    edited = tmp_path / "model.pt"
    resave(
        path,
        edited,
        edit_files=lambda files: {**files, "tsrunner/manifest.json": json.dumps(manifest)},
    )
    model = tsrunner.Runner(edited, threads=1)
    with pytest.raises(ValueError) as caught:
        model.generate(PROMPT, max_new_tokens=3, seed=1, **applies)
    message = str(caught.value)
    assert message.startswith(f"this model's generation_config.json sets {name} ")
    assert message.endswith(f"remove {name} from generation_config.json and re-export")
    if spared is not None:
        params = {"max_new_tokens": 3, **spared}
        assert model.generate(PROMPT, **params) == runner.generate(PROMPT, **params)


def test_hf_default_values_are_not_refused(plain):
    _, runner = plain
    for name, value in HF_DEFAULTS.items():
        manifest = _with_setting(runner.manifest, name, value)
        assert _core.generation_refusals(json.dumps(manifest)) == [], name


def test_several_samples_per_prompt_are_refused(plain):
    """HF draws num_return_sequences samples per prompt; the runner returns several sequences
    only from beam search."""
    _, runner = plain
    with pytest.raises(ValueError, match=r"num_return_sequences 2 with sampling \(HF draws"):
        runner.generate(PROMPT, do_sample=True, num_return_sequences=2)


def test_saved_token_biases_give_hf_generate_tokens(plain, tmp_path):
    """sequence_bias, bad_words_ids, suppress_tokens, begin_suppress_tokens,
    remove_invalid_values and exponential_decay_length_penalty saved in the model's
    generation_config.json, chosen to change greedy output: HF generate's tokens, greedy and
    with beams."""
    path, runner = plain
    directory = path.parent / "model"
    plain_tokens = [
        r["token_ids"] for r in runner.generate(PROMPTS, details=True, max_new_tokens=12)
    ]
    first = plain_tokens[0]
    settings = {
        "suppress_tokens": [max(set(first), key=first.count)],
        "begin_suppress_tokens": [plain_tokens[1][0], plain_tokens[2][0]],
        "bad_words_ids": [[0], [first[2]], plain_tokens[3][:2]],  # EOS alone is never banned
        "sequence_bias": [[[first[-1]], 4.0], [[first[0], first[1]], -1.5]],
        "remove_invalid_values": True,  # the banned tokens' -inf become the lowest float
        "exponential_decay_length_penalty": [3, 1.6],  # EOS grows likelier after 3 tokens
    }
    manifest = copy.deepcopy(runner.manifest)
    manifest["generation"]["generation_config"].update(settings)
    resave(
        path,
        tmp_path / "model.pt",
        edit_files=lambda files: {**files, "tsrunner/manifest.json": json.dumps(manifest)},
    )
    biased = tsrunner.Runner(tmp_path / "model.pt", threads=1)
    assert _core.generation_refusals(json.dumps(manifest)) == []
    for params in ({"max_new_tokens": 12}, {"max_new_tokens": 12, "num_beams": 2}):
        expected = _hf_generate(directory, PROMPTS, **params, **settings)
        assert expected != _hf_generate(directory, PROMPTS, **params), "the settings do nothing"
        got = biased.generate(PROMPTS, details=True, **params)
        assert [r["token_ids"] for r in got] == expected, params


def test_saved_biases_outside_the_vocabulary_are_refused(plain, tmp_path):
    """HF's SequenceBias/NoBadWords processors raise ValueError for a token id outside the
    vocabulary; so does the runner, in one line naming the setting, not silently skip it."""
    path, runner = plain
    vocab = runner.manifest["vocab_size"]
    for name, value in (("sequence_bias", [[[vocab + 3], 2.0]]), ("bad_words_ids", [[vocab]])):
        manifest = copy.deepcopy(runner.manifest)
        manifest["generation"]["generation_config"][name] = value
        target = tmp_path / f"{name}.pt"
        resave(
            path,
            target,
            edit_files=lambda files, m=manifest: {**files, "tsrunner/manifest.json": json.dumps(m)},
        )
        with pytest.raises(ValueError, match=f"saved {name} names token .*outside the vocabulary"):
            tsrunner.Runner(target, threads=1).generate(PROMPTS[0], max_new_tokens=2)
