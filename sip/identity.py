"""The caller's identity a trusted peer asserts (sans-I/O).

Providers often send the real caller number only in ``P-Asserted-Identity`` (RFC 3325) —
with ``From: <sip:anonymous@…>`` or their own pilot number in From — and older equipment in
``Remote-Party-ID`` (draft-ietf-sip-privacy-04, still common on Cisco/Sonus trunks). The
caller's wish not to be identified (``Privacy: id`` RFC 3325, ``Privacy: user``/``header``
RFC 3323, RPID ``privacy=full|uri``) wins: the call is then ``anonymous`` for the PBX's
screens, lists and call-backs.

Only believe these headers from a peer you trust (a configured trunk): anyone else can write
them. :func:`asserted_caller` does not know who sent the request; the caller of it does.
"""

from __future__ import annotations

from sip.message import NameAddr, Request, SipParseError

ANONYMOUS = "anonymous"
#: Privacy header values (RFC 3323 §4.2, RFC 3325 §7) that hide who is calling
_HIDING = frozenset({"id", "user", "header"})
_VISUAL = str.maketrans("", "", " .-()")


def _number(text: str) -> str | None:
    """The number in one name-addr: a tel: URI's subscriber, else a sip/sips user part."""
    try:
        na = NameAddr.parse(text)
    except SipParseError:
        return None
    user = na.uri.user
    if na.uri.scheme not in ("tel", "sip", "sips") or not user:
        return None
    number = user.split(";", 1)[0].translate(_VISUAL)
    if number.lower() == ANONYMOUS:
        return ANONYMOUS
    return number if number.lstrip("+").isdigit() else None


def _privacy_asked(request: Request) -> bool:
    values = {v.strip().lower() for h in request.headers.get_all("Privacy") for v in h.split(";")}
    return bool(values & _HIDING)


def asserted_caller(request: Request) -> str | None:
    """The calling number a peer asserted, ``"anonymous"`` when the caller asked for
    privacy, or None when the request asserts nothing (use the From user then).

    P-Asserted-Identity comes first (a ``tel:`` identity before a ``sip:`` one, RFC 3325
    §9.1 allows one of each); Remote-Party-ID with ``party=calling`` (or no party) next."""
    if _privacy_asked(request):
        return ANONYMOUS
    found = [
        (v.lstrip(' "').lower().find("tel:") < 0, n)
        for v in request.headers.get_all("P-Asserted-Identity")
        if (n := _number(v))
    ]
    if found:
        return min(found, key=lambda f: f[0])[1]  # tel: first, else the first one given
    for value in request.headers.get_all("Remote-Party-ID"):
        try:
            na = NameAddr.parse(value)
        except SipParseError:
            continue
        if (na.param("party") or "calling").lower() != "calling":
            continue
        if (na.param("privacy") or "off").lower() in ("full", "uri"):
            return ANONYMOUS
        n = _number(value)
        if n:
            return n
    return None
