"""Real human-written sentences for dummy inputs, validation and benchmarks.

They come from the docstrings of Python's standard library, which every machine has, so no
third-party text is copied into the repository. The order is deterministic.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import warnings

# Modules with plenty of prose in their docstrings; all are pure-Python standard library.
_MODULES = (
    "argparse",
    "asyncio",
    "collections",
    "concurrent.futures",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "email",
    "enum",
    "fractions",
    "functools",
    "gzip",
    "heapq",
    "http.client",
    "http.server",
    "imaplib",
    "inspect",
    "ipaddress",
    "json",
    "logging",
    "mailbox",
    "multiprocessing",
    "optparse",
    "pathlib",
    "pickle",
    "pydoc",
    "queue",
    "random",
    "shutil",
    "smtplib",
    "socket",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "tkinter",
    "turtle",
    "typing",
    "unittest",
    "urllib.parse",
    "urllib.request",
    "uuid",
    "warnings",
    "zipfile",
)

# More modules for lines(): line-level text needs a larger pool than sentences() does.
_MORE_MODULES = (
    "ast",
    "calendar",
    "codecs",
    "configparser",
    "contextlib",
    "ftplib",
    "gettext",
    "locale",
    "os",
    "poplib",
    "sched",
    "shlex",
    "socketserver",
    "tokenize",
    "traceback",
    "xml.dom.minidom",
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"[A-Za-z]{2,}")


def _docstrings(module_name: str):
    try:
        module = importlib.import_module(module_name)
    except Exception:  # a module missing from a slim Python install is simply skipped
        return
    yield inspect.getdoc(module) or ""
    for _, member in sorted(vars(module).items()):
        if getattr(member, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(member) or inspect.isfunction(member):
            yield inspect.getdoc(member) or ""
            if inspect.isclass(member):
                for _, method in sorted(vars(member).items()):
                    if inspect.isfunction(method):
                        yield inspect.getdoc(method) or ""


def _is_prose(sentence: str) -> bool:
    words = _WORD.findall(sentence)
    visible = sentence.replace(" ", "")
    letters = sum(ch.isalpha() for ch in visible)
    return (
        len(words) >= 3
        and len(words) >= 0.6 * len(sentence.split())
        and letters >= 0.8 * len(visible)
        and ">>>" not in sentence
    )


@functools.lru_cache(maxsize=1)
def sentences() -> tuple[str, ...]:
    """Every distinct prose sentence found, in a fixed order (thousands)."""
    seen: dict[str, None] = {}
    with warnings.catch_warnings():  # reading some members (typing.io) warns; we only read docs
        warnings.simplefilter("ignore")
        docs = [doc for name in _MODULES for doc in _docstrings(name)]
    for doc in docs:
        for paragraph in doc.split("\n\n"):
            text = " ".join(paragraph.split())
            for sentence in _SENTENCE_END.split(text):
                if 12 <= len(sentence) <= 600 and _is_prose(sentence):
                    seen.setdefault(sentence, None)
    return tuple(seen)


@functools.lru_cache(maxsize=1)
def lines() -> tuple[str, ...]:
    """Every distinct non-empty docstring line (stripped), in a fixed order (over 10,000).

    Unlike sentences(), nothing is filtered out: code, tables and odd punctuation included, which
    is what a tokenizer test wants.
    """
    seen: dict[str, None] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in _MODULES + _MORE_MODULES:
            for doc in _docstrings(name):
                for line in doc.splitlines():
                    if line.strip():
                        seen.setdefault(line.strip(), None)
    return tuple(seen)


def sample(count: int, *, offset: int = 0) -> list[str]:
    """`count` sentences of mixed length, starting at `offset` in the fixed order."""
    pool = sentences()
    if not pool:
        raise RuntimeError("no sample sentences found in the standard library's docstrings")
    return [pool[(offset + i) % len(pool)] for i in range(count)]
