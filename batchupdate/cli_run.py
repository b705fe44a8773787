"""Commands that talk to the API (run, plan, select, report, undo, simulator)."""

from __future__ import annotations

from typing import Any


def add_commands(commands: Any, *helpers: Any) -> None:
    """Register the API commands on the `batchupdate` parser."""
