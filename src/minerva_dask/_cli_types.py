"""Argument types shared by the subcommands' parsers (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse


def storage_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``--storage-option``: ``true``/``false`` become booleans."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. anon=true), got {text!r}")
    return key, {"true": True, "false": False}.get(value.lower(), value)
