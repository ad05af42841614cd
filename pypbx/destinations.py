"""Where a call can be sent: the destination strings shared by DIDs (:mod:`pypbx.trunks`),
routing rules (:mod:`pypbx.routing`), IVR actions (:mod:`pypbx.ivr`), ring groups' and
queues' fallbacks. Pure: no I/O, no imports from the rest of pypbx.
"""

from __future__ import annotations

#: Outside numbers shorter than this are refused (emergency numbers excepted, see trunks).
MIN_EXTERNAL_DIGITS = 6
DEST_KINDS = ("extension", "queue", "ivr", "voicemail", "group", "external", "route")


class DestinationError(ValueError):
    """A destination string that is not one."""


def parse_destination(dest: str) -> str:
    """``kind:target`` in canonical form (``menu:`` -> ``ivr:``, ``ring_group:`` -> ``group:``,
    ``ext:`` -> ``extension:``, ``number:`` -> ``external:``; an external number's digits)."""
    kind, _, target = (dest or "").strip().partition(":")
    kind = {"menu": "ivr", "ring_group": "group", "ext": "extension", "number": "external"}.get(kind, kind)
    target = target.strip()
    if kind not in DEST_KINDS or not target:
        raise DestinationError(
            f"bad destination {dest!r}: extension:NUMBER, queue:NAME, ivr:MENU, voicemail:BOX, "
            "group:NAME, external:NUMBER or route:NAME"
        )
    if kind == "external":
        n = "".join(c for c in target if c.isdigit() or c == "+")
        if not n or not n.lstrip("+").isdigit() or len(n.lstrip("+")) < MIN_EXTERNAL_DIGITS:
            raise DestinationError(f"bad external number {target!r}")
        target = n
    return f"{kind}:{target}"
