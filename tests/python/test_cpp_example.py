"""examples/cpp: a C++ app with its own CMakeLists.txt, built against the pip-installed package
with find_package(tsrunner), links libtsrunner and embeds texts given on the command line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

import tsrunner

TEXTS = ["Who was Jim Henson?", "Jim Henson was a puppeteer", "The stock market fell on Tuesday"]


@pytest.fixture(scope="module")
def embed_app(example_build) -> Path:
    return example_build / "embed"


def test_the_app_embeds_like_the_python_runner(embed_app, minilm_pt, clean_env):
    result = subprocess.run(
        [str(embed_app), str(minilm_pt), *TEXTS], capture_output=True, text=True, env=clean_env
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    embeddings = torch.tensor([json.loads(line)["embedding"] for line in lines[: len(TEXTS)]])
    expected = torch.tensor(
        [answer["embedding"] for answer in tsrunner.Runner(minilm_pt).predict(TEXTS)]
    )
    torch.testing.assert_close(embeddings, expected, rtol=0, atol=1e-5)
    similarity = [float(line.rsplit("= ", 1)[1]) for line in lines[len(TEXTS) :]]
    assert len(similarity) == 2 and similarity[0] > 0.5 > similarity[1]


def test_the_app_reports_errors_in_one_line(embed_app, tmp_path):
    missing = subprocess.run(
        [str(embed_app), str(tmp_path / "none.pt"), "hi"], capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"embed: model file not found: {tmp_path / 'none.pt'}"
    usage = subprocess.run([str(embed_app)], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage: embed MODEL.pt TEXT" in usage.stderr


def test_the_app_answers_for_a_classifier(embed_app, tmp_path, clean_env):
    import make_fixtures
    import tiny_models

    model = tiny_models.make_model(
        "BERT", "text-classification", tmp_path / "classifier",
        tokenizer_source=make_fixtures.minilm_directory(),
    )  # fmt: skip
    exported = tmp_path / "classifier.pt"
    tsrunner.export(model, exported, max_length=32)
    result = subprocess.run(
        [str(embed_app), str(exported), *TEXTS], capture_output=True, text=True, env=clean_env
    )
    assert result.returncode == 0, result.stderr
    expected = tsrunner.Runner(exported).predict(TEXTS)
    lines = result.stdout.splitlines()
    assert len(lines) == len(TEXTS)
    for i, (line, answer) in enumerate(zip(lines, expected, strict=True)):
        best = answer["labels"][0]
        assert line.startswith(f"{i}: {best['label']} (")
        assert float(line.rsplit("(", 1)[1].rstrip(")")) == pytest.approx(best["score"], abs=1e-3)
