"""HTTP headers <-> gRPC metadata, and the gRPC timeout header."""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import os
import re
from collections.abc import Iterable, MutableMapping
from typing import Any

from starlette.datastructures import Headers

MetadataPairs = list[tuple[str, str | bytes]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_HEADER_PREFIX = "grpc-metadata-"
_METADATA_HEADER_PREFIX_BYTES = METADATA_HEADER_PREFIX.encode("latin-1")
REQUEST_ID = "x-request-id"
CONSISTENCY_TOKEN = "x-consistency-token"

_TIMEOUT = re.compile(r"(\d{1,8})([HMSmun])")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# Metadata keys per the gRPC spec; anything else would make the call fail inside grpc.
_KEY = re.compile(r"[0-9a-z_.-]+")
# Printable ASCII: the only characters a non-binary metadata value may carry.
_VALUE = re.compile(r"[\x20-\x7e]*")
# `cookie` is only ever the gateway's allow-listed selection of the request's cookies; trace
# context only the gateway's own span's (gateway.tracing), so a client cannot pick trace ids
# or slip a malformed value past the gateway's propagator.
_MANAGED = frozenset({REQUEST_ID, "x-forwarded-for", "cookie", "traceparent", "tracestate"})
# A cookie name per RFC 6265 (a token); anything else is not forwarded.
_COOKIE_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_URLSAFE = str.maketrans("-_", "+/")
# A client's request id is echoed and logged: only short, plain tokens are taken as given.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class HeaderError(ValueError):
    """A request header cannot be carried as gRPC metadata."""


class HeadersTooLarge(HeaderError):
    """Request headers beyond the configured size (answered 431)."""


# gRPC's own request headers (:path, user-agent, te, ...) take about 500 bytes of the backend's
# metadata limit (8 KiB by default): what the gateway forwards must leave room for them.
GRPC_HEADERS_RESERVE = 1024


def metadata_size(md: MetadataPairs) -> int:
    """Metadata size as gRPC (HTTP/2) counts it: key + value + 32 per entry."""
    return sum(len(key) + len(value) + 32 for key, value in md)


def oversized_header(raw: Iterable[tuple[bytes, bytes]], each: int, total: int) -> str | None:
    """Why these raw request headers are too large (one beyond `each` bytes, or all together
    beyond `total`), None when they fit."""
    size = 0
    for name, value in raw:
        one = len(name) + len(value)
        if one > each:
            return f'header "{name.decode("latin-1")}" exceeds {each} bytes'
        size += one + 4
    if size > total:
        return f"request headers exceed {total} bytes"
    return None


def parse_grpc_timeout(value: str) -> float:
    """`Grpc-Timeout` (e.g. `5S`, `100m`) in seconds."""
    match = _TIMEOUT.fullmatch(value.strip())
    if match is None:
        raise HeaderError(f'invalid Grpc-Timeout "{value}"')
    return int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]


def request_id_from(headers: Headers) -> str:
    """The client's request id when it is a sane token, else a fresh one."""
    return chosen_request_id(headers.get(REQUEST_ID))


def chosen_request_id(given: str | None) -> str:
    """`given` (the client's X-Request-Id) when it is a sane token to log and pass on, else a
    fresh one."""
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return fresh_request_id()


def fresh_request_id() -> str:
    """A random (version 4) UUID in its usual text form, as `str(uuid.uuid4())` gives, without
    building the UUID object (a third of the cost, on every request without an id)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """CIDR blocks (or single addresses) as networks; ValueError names a bad entry."""
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f'"{entry}" is not an IP address or CIDR block') from None
    return tuple(networks)


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


# Resolved addresses are remembered for X-Forwarded-For values up to this long (a few hops):
# parsing IP addresses is a good part of a proxied call's cost, and the memo stays within
# 4,096 small keys whatever clients send.
_MEMO_FORWARDED_CHARS = 256


def client_address(
    forwarded: Iterable[str], peer: str | None, trusted: Iterable[Network]
) -> str | None:
    """Who the client is: the rightmost hop of `X-Forwarded-For` + peer that is not a trusted
    proxy. Hops are only read leftwards through trusted proxies, so a client cannot name
    itself; if the hop to use is not an IP address, the peer is used instead. None when the
    peer itself is not an IP address."""
    hops, networks = tuple(forwarded), tuple(trusted)
    if sum(len(hop) for hop in hops) > _MEMO_FORWARDED_CHARS:
        return _client_address(hops, peer, networks)
    return _remembered_client_address(hops, peer, networks)


def _client_address(
    forwarded: tuple[str, ...], peer: str | None, networks: tuple[Network, ...]
) -> str | None:
    peer_ip = _ip(peer) if peer else None
    if peer_ip is None:
        return None
    current = peer_ip
    hops = [part for value in forwarded for part in value.split(",")]
    while hops and any(current in network for network in networks):
        previous = _ip(hops.pop())
        if previous is None:
            return str(peer_ip)
        current = previous
    return str(current)


_remembered_client_address = functools.lru_cache(maxsize=4096)(_client_address)


def pairs(metadata: Any) -> MetadataPairs:
    """Normalise grpc.aio.Metadata / tuples of metadata into (key, value) pairs."""
    if not metadata:
        return []
    return [(str(key), value) for key, value in metadata]


def set_raw_header(headers: list[tuple[bytes, bytes]], name: bytes, value: bytes) -> None:
    """`MutableHeaders(raw=headers)[name] = value` for a lower-case `name`: the first header
    of that name takes the value, later ones are dropped; appended when there is none."""
    found = [index for index, (key, _) in enumerate(headers) if key == name]
    for index in reversed(found[1:]):
        del headers[index]
    if found:
        headers[found[0]] = (name, value)
    else:
        headers.append((name, value))


class IndexedHeaders(Headers):
    """Starlette's request `Headers`, reading one header by name from a dict made in one
    pass (the first of each name, as `Headers.get` finds it) instead of a scan of the list
    on every read: a proxied call reads about ten of them."""

    def __init__(self, *, scope: MutableMapping[str, Any]) -> None:
        super().__init__(scope=scope)
        first: dict[bytes, bytes] = {}
        for key, value in self.raw:
            first.setdefault(key, value)
        self._first = first

    def __getitem__(self, key: str) -> str:
        return self._first[key.lower().encode("latin-1")].decode("latin-1")

    def __contains__(self, key: Any) -> bool:
        return isinstance(key, str) and key.lower().encode("latin-1") in self._first

    def get(self, key: str, default: Any = None) -> Any:
        value = self._first.get(key.lower().encode("latin-1"))
        return default if value is None else value.decode("latin-1")


def _text(key: str, value: str) -> str:
    if not _VALUE.fullmatch(value):
        raise HeaderError(f'header for metadata "{key}" must be printable ASCII')
    return value


def forwarded_cookies(headers: Headers, names: frozenset[str]) -> str | None:
    """The request's cookies whose names are in `names`, as one `Cookie` value (None if it
    has none of them). Only allow-listed cookies reach the backend: the browser sends every
    cookie of the site, most of which are none of the backend's business."""
    if not names:
        return None
    kept: list[str] = []
    for header in headers.getlist("cookie"):
        for part in header.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name in names and _COOKIE_NAME.fullmatch(name) and _VALUE.fullmatch(value):
                kept.append(f"{name}={value}")
    return "; ".join(kept) or None


def outgoing_metadata(
    headers: Headers,
    client_host: str | None,
    request_id: str,
    trusted_proxies: Iterable[Network] = (),
    cookies: frozenset[str] = frozenset(),
) -> MetadataPairs:
    md: MetadataPairs = [(REQUEST_ID, request_id)]
    for name in ("authorization", CONSISTENCY_TOKEN):
        value = headers.get(name)
        if value is not None:
            md.append((name, _text(name, value)))
    cookie = forwarded_cookies(headers, cookies)
    if cookie is not None:
        md.append(("cookie", cookie))
    for raw_name, raw_value in headers.raw:
        lowered_raw = raw_name.lower()
        if not lowered_raw.startswith(_METADATA_HEADER_PREFIX_BYTES):
            continue
        lowered, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        key = lowered[len(METADATA_HEADER_PREFIX) :]
        if not _KEY.fullmatch(key) or key.startswith("grpc-"):
            raise HeaderError(f'invalid metadata key "{key}"')
        if key in _MANAGED or any(k == key for k, _ in md):
            # The gateway sets these itself; a client must not spoof or duplicate them.
            continue
        if key.endswith("-bin"):
            try:
                # Accept padded or unpadded, standard or URL-safe alphabet; reject junk.
                text = value.strip().translate(_URLSAFE).rstrip("=")
                md.append((key, base64.b64decode(text + "=" * (-len(text) % 4), validate=True)))
            except binascii.Error:
                raise HeaderError(f'metadata "{key}" must be base64') from None
        else:
            md.append((key, _text(key, value)))
    # The backend is told one address, resolved here: the client's own X-Forwarded-For counts
    # only as far as it was appended by trusted proxies (by default none: just the peer).
    client = client_address(headers.getlist("x-forwarded-for"), client_host, trusted_proxies)
    if client is not None:
        md.append(("x-forwarded-for", client))
    return md


def response_headers(
    *metadata: Iterable[tuple[str, str | bytes]], as_headers: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """HTTP headers for the call's response metadata: `Grpc-Metadata-<key>` for each, except
    the keys in `as_headers`, which become a header of their own name (e.g. `set-cookie`) and
    are never echoed as `Grpc-Metadata-*`, which scripts could read."""
    out: list[tuple[str, str]] = []
    for group in metadata:
        for key, value in group:
            # Binary values have no safe header form; grpc-* and pseudo keys are transport.
            if key.endswith("-bin") or key.startswith(("grpc-", ":")) or isinstance(value, bytes):
                continue
            if key in as_headers:
                if _VALUE.fullmatch(value):
                    out.append((key, value))
                continue
            out.append(("Grpc-Metadata-" + key, value))
            if key == CONSISTENCY_TOKEN:
                out.append(("X-Consistency-Token", value))
    return out
