"""Every form a secret can take in output, masked: the last line of defence for any text we print
or write.

A secret reaches text not only as itself: an exception's repr escapes it (`'og-…\\n'`), JSON escapes
it, a URL encodes it, and HTTP Basic auth carries `base64(user:secret)` — whose characters depend
on how many bytes come before the secret. For each of the three alignments, the base64 characters
that depend on the secret's bytes alone are masked, so `base64(anything + ':' + secret)` is
caught whatever the user name. Credentials too short to mask safely are refused when read
(settings.MIN_SECRET_LENGTH); here every secret of 4 characters or more is masked.
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from urllib.parse import quote, quote_plus

MASK = "****"
MIN_FORM = 4  # a shorter form would mask ordinary text


@lru_cache(maxsize=64)
def secret_forms(secret: str) -> tuple[str, ...]:
    """The secret as it may appear in text: raw, repr- and JSON-escaped, URL-encoded, and the
    base64 cores of every alignment (standard and URL-safe alphabets); longest first."""
    if len(secret) < MIN_FORM:
        return ()
    forms = {
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
    }
    for core in _base64_cores(secret.encode("utf-8")):
        forms.update({core, core.replace("+", "-").replace("/", "_")})
    return tuple(sorted((form for form in forms if len(form) >= MIN_FORM), key=len, reverse=True))


def _base64_cores(data: bytes) -> list[str]:
    """For 0, 1 and 2 unknown bytes before `data`: the base64 characters fixed by `data` alone."""
    cores = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode("ascii").rstrip("=")
        total = offset + len(data)
        start = (0, 2, 3)[offset]  # the first characters also carry bits of the unknown prefix
        end = 4 * (total // 3) + (0, 1, 2)[total % 3]  # the last ones may carry bits of what follows
        cores.append(encoded[start:end])
    return cores


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every form of every secret replaced by a mask."""
    for secret in secrets:
        if not secret:
            continue
        for form in secret_forms(secret):
            if form in text:
                text = text.replace(form, MASK)
    return text
