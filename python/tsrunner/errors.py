"""Exceptions shared by the Python side and the C++ runner (libtsrunner maps onto these)."""

from __future__ import annotations


class Error(RuntimeError):
    """Base of tsrunner's load and run failures."""


class LoadError(Error):
    """A model file could not be loaded: missing, not TorchScript, or no valid manifest."""


class ExportError(Error):
    """An export failed (the model cannot be traced, or the trace failed validation)."""


class InvalidInput(Error, ValueError):
    """Inputs or options do not match the export's contract (names, dtypes, shapes, values).

    Both a tsrunner.Error (as in C++, where InvalidInput derives from Error) and a ValueError
    (bad input is a ValueError in Python)."""
