"""The one error the media steps raise: the clips cannot become the planned video (the message says which
segment or what differs)."""

from __future__ import annotations


class AssemblyError(RuntimeError):
    pass
