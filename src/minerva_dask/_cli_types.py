"""Argument types shared by the subcommands' parsers (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse


def storage_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``--storage-option``: ``true``/``false`` become booleans."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. anon=true), got {text!r}")
    return key, {"true": True, "false": False}.get(value.lower(), value)


REMOTE_OPTIONS_HELP = "fsspec option for remote images (repeatable)"


def add_storage_option(parser: argparse.ArgumentParser, help: str = REMOTE_OPTIONS_HELP) -> None:
    """``--storage-option KEY=VALUE`` (repeatable) on a subcommand that opens images."""
    parser.add_argument(
        "--storage-option",
        action="append",
        type=storage_option,
        default=[],
        metavar="KEY=VALUE",
        help=help,
    )


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    """``-q`` (errors only) and ``-v`` (repeatable: more logging) on a subcommand."""
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument("-v", "--verbose", action="count", default=0)
