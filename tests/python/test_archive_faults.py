"""Broken, foreign and tampered archives: a one-line LoadError (Python) or exit code 2 (tsrun),
never a crash; and the content digest that detects modification before anything is loaded."""

from __future__ import annotations

import json
import subprocess
import zipfile

import pytest
import torch

import tsrunner
from archive_tools import copy, entry_name, flip_byte, resave
from tsrunner.integrity import DIGEST_RECORD, content_digest


def _empty(source, path):
    path.write_bytes(b"")


def _truncated_half(source, path):
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])


def _truncated_tail(source, path):
    path.write_bytes(source.read_bytes()[:-10])


def _random_bytes(source, path):
    path.write_bytes(
        torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(1))
        .to(torch.uint8)
        .numpy()
        .tobytes()
    )


def _foreign_zip(source, path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "a zip file, but not TorchScript")


def _flip_weights(source, path):
    flip_byte(source, path, "data/0", index=5)


def _flip_manifest(source, path):
    flip_byte(source, path, "extra/tsrunner/manifest.json", index=40)


def _flip_code(source, path):
    flip_byte(source, path, "data.pkl", index=20)


def _unsealed(source, path):
    resave(source, path, sealed=False)


def _newer_schema(source, path):
    def edit(files):
        manifest = json.loads(files["tsrunner/manifest.json"])
        manifest["schema_version"] = 3
        return {**files, "tsrunner/manifest.json": json.dumps(manifest)}

    resave(source, path, edit_files=edit)


def _no_manifest(source, path):
    resave(source, path, edit_files=lambda f: {k: v for k, v in f.items() if "manifest" not in k})


def _tokenizer_not_json(source, path):
    resave(source, path, edit_files=lambda f: {**f, "tsrunner/tokenizer.json": '{"model": {'})


def _tokenizer_not_a_tokenizer(source, path):
    resave(source, path, edit_files=lambda f: {**f, "tsrunner/tokenizer.json": "[1, 2]"})


def _tokenizer_missing(source, path):
    resave(source, path, edit_files=lambda f: {k: v for k, v in f.items() if "tokenizer" not in k})


def _digest_garbage(source, path):
    resave(source, path, sealed=False)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(entry_name(path, "extra/" + DIGEST_RECORD), "not json")


def _digest_unknown_algorithm(source, path):
    resave(source, path, sealed=False)
    record = {"algorithm": "md5", "content_digest": "0" * 64}
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(entry_name(path, "extra/" + DIGEST_RECORD), json.dumps(record))


def _record_twice(source, path):
    copy(source, path)
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as archive:
        archive.writestr(entry_name(path, "constants.pkl"), b"shadow")


def _resealed_after_edit(source, path):
    """An attacker who edits the manifest and recomputes the digest: the file is consistent, so
    only a digest pinned from a trusted source (expected_sha256) can tell; see test below."""

    def edit(files):
        manifest = json.loads(files["tsrunner/manifest.json"])
        manifest["task"] = "feature-extraction"
        manifest["model"]["source"] = "somebody-else"
        return {**files, "tsrunner/manifest.json": json.dumps(manifest)}

    resave(source, path, edit_files=edit)


BROKEN = {
    "empty": (_empty, r"is empty \(0 bytes\), not a TorchScript archive"),
    "truncated-half": (_truncated_half, r"is not a TorchScript archive \(.*central directory"),
    "truncated-tail": (_truncated_tail, r"is not a TorchScript archive \("),
    "random-bytes": (_random_bytes, r"is not a TorchScript archive \("),
    "foreign-zip": (_foreign_zip, r"not a TorchScript archive \(file in archive is not in a sub"),
    "flipped-weights": (_flip_weights, r"was modified after export: its records hash to sha256:"),
    "flipped-manifest": (_flip_manifest, r"was modified after export"),
    "flipped-data-pkl": (_flip_code, r"was modified after export|is corrupted"),
    "digest-removed": (_unsealed, r"has no content digest \(tsrunner/digest\.json\)"),
    "newer-schema": (_newer_schema, r"uses manifest schema 3 but this tsrunner reads up to 2"),
    "no-manifest": (_no_manifest, r"has no tsrunner/manifest\.json but holds other tsrunner"),
    "tokenizer-not-json": (_tokenizer_not_json, r"tokenizer\.json in .* is not valid JSON"),
    "tokenizer-not-tokenizer": (_tokenizer_not_a_tokenizer, r"is not a Hugging Face tokenizer"),
    "tokenizer-missing": (_tokenizer_missing, r"manifest names tsrunner/tokenizer\.json but it"),
    "digest-garbage": (_digest_garbage, r"tsrunner/digest\.json is not a JSON object"),
    "digest-md5": (_digest_unknown_algorithm, r'digest algorithm "md5" .* upgrade tsrunner'),
    "record-twice": (_record_twice, r"holds the record constants\.pkl twice"),
}


@pytest.fixture(scope="module")
def broken(tiny_bert_pt, tmp_path_factory):
    directory = tmp_path_factory.mktemp("broken")
    paths = {}
    for name, (make, _) in BROKEN.items():
        paths[name] = directory / f"{name}.pt"
        make(tiny_bert_pt, paths[name])
    return paths


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_archive_is_a_one_line_load_error(broken, case):
    with pytest.raises(tsrunner.LoadError, match=BROKEN[case][1]) as caught:
        tsrunner.Runner(broken[case])
    assert isinstance(caught.value, RuntimeError)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("case", list(BROKEN))
def test_tsrun_refuses_a_broken_archive_with_exit_2(broken, tsrun, case):
    result = subprocess.run(
        [tsrun, str(broken[case]), "--ids", "101,102", "--raw"], capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("tsrun: error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert "terminate called" not in result.stderr
    assert result.stdout == ""


def test_flipped_weight_loads_silently_in_plain_pytorch(broken, tiny_bert_pt):
    """Why the digest exists: LibTorch does not check stored records, so the damage is silent."""
    original = torch.jit.load(str(tiny_bert_pt)).state_dict()
    damaged = torch.jit.load(str(broken["flipped-weights"])).state_dict()
    assert any(not torch.equal(original[k], damaged[k]) for k in original)


def test_python_and_cpp_compute_the_same_digest(tiny_bert_pt):
    digest = tsrunner.verify_archive(tiny_bert_pt)
    assert digest == content_digest(tiny_bert_pt)
    assert len(digest) == 64 and int(digest, 16) >= 0
    record = json.loads(tsrunner.read_archive_file(tiny_bert_pt, DIGEST_RECORD))
    assert record["algorithm"] == "sha256" and record["content_digest"] == digest


def test_the_digest_ignores_the_file_name_and_zip_layout(tiny_bert_pt, tmp_path):
    renamed = copy(tiny_bert_pt, tmp_path / "another name.pt")
    assert tsrunner.verify_archive(renamed) == tsrunner.verify_archive(tiny_bert_pt)


def test_a_resealed_edit_passes_the_digest_but_not_a_pinned_one(tiny_bert_pt, tmp_path):
    forged = tmp_path / "forged.pt"
    _resealed_after_edit(tiny_bert_pt, forged)
    assert tsrunner.Runner(forged).manifest["model"]["source"] == "somebody-else"
    pinned = tsrunner.verify_archive(tiny_bert_pt)
    assert tsrunner.Runner(tiny_bert_pt, expected_sha256=pinned.upper()).manifest
    with pytest.raises(tsrunner.LoadError, match="does not have the expected content digest"):
        tsrunner.Runner(forged, expected_sha256=pinned)
    with pytest.raises(tsrunner.LoadError, match="does not have the expected content digest"):
        tsrunner.verify_archive(forged, expected_sha256=pinned)


def test_unverified_loading_is_an_explicit_choice(broken):
    runner = tsrunner.Runner(broken["digest-removed"], verify_integrity=False)
    assert runner.run({"input_ids": torch.tensor([[101, 102]])})["pooler_output"].shape == (1, 32)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_archive_bytes": 1000}, r"is \d+ bytes, over max_archive_bytes \(1000\)"),
        (
            {"max_embedded_file_bytes": 1000},
            r"embedded file tsrunner/\w+\.json declares \d+ bytes, over max_embedded_file_bytes",
        ),
    ],
)
def test_size_caps_refuse_before_reading(tiny_bert_pt, options, message):
    with pytest.raises(tsrunner.LoadError, match=message):
        tsrunner.Runner(tiny_bert_pt, **options)


def test_declared_sizes_count_against_the_archive_cap(tiny_bert_pt, tmp_path):
    """A compressed record can unpack to far more than the file holds (a zip bomb)."""
    bomb = tmp_path / "bomb.pt"
    resave(tiny_bert_pt, bomb, sealed=False)
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(entry_name(bomb, "extra/padding.bin"), bytes(64 << 20))
    assert bomb.stat().st_size < 8 << 20
    with pytest.raises(tsrunner.LoadError, match="records once unpacked, over max_archive_bytes"):
        tsrunner.Runner(bomb, max_archive_bytes=32 << 20, max_embedded_file_bytes=1 << 30)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"expected_sha256": "abc"}, "expected_sha256 must be 64 hex digits"),
        ({"max_archive_bytes": 0}, "must be positive"),
    ],
)
def test_bad_integrity_options_are_value_errors(tiny_bert_pt, options, message):
    with pytest.raises(ValueError, match=message):
        tsrunner.Runner(tiny_bert_pt, **options)


def test_tsrun_checks_a_pinned_digest(tiny_bert_pt, tsrun):
    digest = tsrunner.verify_archive(tiny_bert_pt)
    run = [tsrun, str(tiny_bert_pt), "--ids", "101,102", "--raw", "--expect-sha256"]
    assert subprocess.run([*run, digest], capture_output=True).returncode == 0
    wrong = subprocess.run([*run, "f" * 64], capture_output=True, text=True)
    assert wrong.returncode == 2
    assert "does not have the expected content digest" in wrong.stderr
    malformed = subprocess.run([*run, "xyz"], capture_output=True, text=True)
    assert malformed.returncode == 2 and "expected_sha256 must be 64 hex digits" in malformed.stderr


@pytest.mark.parametrize(
    "case", ["empty", "truncated-half", "foreign-zip", "no-manifest", "newer-schema"]
)
def test_tsrunner_info_refuses_a_broken_archive_with_exit_2(broken, case, capsys):
    from tsrunner.cli import main

    assert main(["info", str(broken[case])]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("tsrunner: error: ") and captured.err.count("\n") == 1
