"""The one place the tsrunner version is written; CMake and the wheel read it from here."""

__version__ = "0.1.0"
