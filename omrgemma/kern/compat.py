"""Make converter21 4.0.x work with music21 10.x.

converter21 4.0.1 calls `Metadata._convertValue`, which music21 10 renamed to `convertValue`, so
every kern file with `!!!` reference records failed with `AttributeError: 'Metadata' object has no
attribute '_convertValue'` (files without reference records converted fine, hiding the bug).
`register()` puts the old name back as an alias, only where it is missing, so the patch disappears
by itself once either library catches up.
"""

from __future__ import annotations

_registered = False


def register() -> None:
    """Register converter21's Humdrum/MEI readers and writers with music21 (idempotent)."""
    global _registered
    if _registered:
        return
    import converter21
    from music21.metadata import Metadata

    converter21.register()
    if not hasattr(Metadata, "_convertValue"):
        Metadata._convertValue = staticmethod(Metadata.convertValue)
    _registered = True
