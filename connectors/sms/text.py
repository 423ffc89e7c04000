"""Message text and SMPP octets: choosing the alphabet, splitting long text behind a concatenation
UDH, decoding and reassembling what the SMSC delivers, reading delivery receipts, and masking
phone numbers for logs. Pure functions and one small buffer; no I/O, no smpplib, nothing from Kefu.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

# GSM 03.38 default alphabet (one septet per octet, as SMPP carries it unpacked) and its escape table.
GSM_BASIC = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
             "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXTENSION = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~",
                 0x3E: "]", 0x40: "|", 0x65: "€"}

# Characters with the same code in GSM 03.38 and ASCII. Text made only of these reads the same
# whether the SMSC takes data_coding 0 as GSM (the standard) or as ASCII (as many Chinese SMSCs
# do), so it may go in the default alphabet; anything else ('@', '$', '_', Chinese …) goes as UCS2.
PLAIN = frozenset(ch for code, ch in enumerate(GSM_BASIC) if ord(ch) == code)

DC_DEFAULT, DC_ASCII, DC_LATIN1, DC_UCS2 = 0x00, 0x01, 0x03, 0x08
UDHI = 0x40            # esm_class bit: short_message starts with a user data header
MAX_PARTS = 255        # the concatenation header counts parts in one octet

# (octets in one whole message, octets of text per part behind the 6-octet UDH)
_SIZES = {DC_DEFAULT: (160, 153), DC_UCS2: (140, 134)}


@dataclass(frozen=True)
class Encoded:
    """A message ready for submit_sm: one ``short_message`` per part, UDH included when split."""

    data_coding: int
    esm_class: int
    parts: list[bytes]


@dataclass(frozen=True)
class Concat:
    """The concatenation element of a UDH: reference shared by the parts, their count, this one's number."""

    reference: int
    total: int
    number: int


def encode_message(text: str, reference: int) -> Encoded:
    """Encode ``text`` (default alphabet if it is all PLAIN, else UCS2) and split it if it is too long.

    ``reference`` (taken modulo 256) ties the parts together; the caller rotates it per message.
    Raises ``ValueError`` if the text needs more than 255 parts.
    """
    if all(ch in PLAIN for ch in text):
        coding, data = DC_DEFAULT, text.encode("ascii")
    else:
        coding, data = DC_UCS2, text.encode("utf-16-be")
    whole, per_part = _SIZES[coding]
    if len(data) <= whole:
        return Encoded(coding, 0, [data])
    chunks = _chunks(data, per_part, ucs2=coding == DC_UCS2)
    if len(chunks) > MAX_PARTS:
        raise ValueError(f"message of {len(text)} characters needs {len(chunks)} parts; at most {MAX_PARTS}")
    header = bytes((0x05, 0x00, 0x03, reference & 0xFF, len(chunks)))
    return Encoded(coding, UDHI, [header + bytes((n,)) + chunk for n, chunk in enumerate(chunks, 1)])


def _chunks(data: bytes, size: int, *, ucs2: bool) -> list[bytes]:
    chunks, start = [], 0
    while start < len(data):
        end = min(start + size, len(data))
        # A high surrogate must stay with its low half, or each part decodes to garbage.
        if ucs2 and end < len(data) and 0xD8 <= data[end - 2] <= 0xDB:
            end -= 2
        chunks.append(data[start:end])
        start = end
    return chunks


def split_udh(esm_class: int, short_message: bytes) -> tuple[Concat | None, bytes]:
    """Separate the UDH (if esm_class says there is one) from the text; return its concatenation info."""
    if not esm_class & UDHI or not short_message:
        return None, short_message
    length = short_message[0]
    header, body = short_message[1:1 + length], short_message[1 + length:]
    concat, pos = None, 0
    while pos + 2 <= len(header):
        element, size = header[pos], header[pos + 1]
        value = header[pos + 2:pos + 2 + size]
        pos += 2 + size
        if element == 0x00 and size == 3:      # 8-bit reference
            concat = Concat(value[0], value[1], value[2])
        elif element == 0x08 and size == 4:    # 16-bit reference
            concat = Concat(int.from_bytes(value[:2], "big"), value[2], value[3])
    return concat, body


def decode_text(data_coding: int, data: bytes) -> str:
    """Decode a short_message body. data_coding 0 is read as GSM 03.38, as SMPP 3.4 defines it."""
    if data_coding == DC_UCS2:
        return data.decode("utf-16-be", errors="replace")
    if data_coding == DC_DEFAULT:
        return gsm_decode(data)
    if data_coding == DC_ASCII:
        return data.decode("ascii", errors="replace")
    return data.decode("latin-1")  # Latin-1 and unknown codings: keep every octet visible


def gsm_decode(data: bytes) -> str:
    """Unpacked GSM 03.38 septets to text (an unknown escape falls back to the basic character)."""
    out, escaped = [], False
    for octet in data:
        code = octet & 0x7F
        if escaped:
            out.append(GSM_EXTENSION.get(code, GSM_BASIC[code]))
            escaped = False
        elif code == 0x1B:
            escaped = True
        else:
            out.append(GSM_BASIC[code])
    return "".join(out)


class Reassembly:
    """Parts of concatenated messages waiting for their siblings. Used by one thread only.

    Parts missing for ``max_age`` seconds are given up (the SMSC will not send them any more).
    """

    def __init__(self, max_age: float = 600.0) -> None:
        self.max_age = max_age
        self._parts: dict[tuple, dict[int, bytes]] = {}
        self._since: dict[tuple, float] = {}

    def add(self, key: tuple, concat: Concat, body: bytes, now: float) -> bytes | None:
        """Keep one part; return the whole message's octets once every part is in, else None."""
        for stale in [k for k, since in self._since.items() if now - since > self.max_age]:
            del self._parts[stale], self._since[stale]
        if not 1 <= concat.number <= concat.total:
            return body  # a broken header: deliver what we have rather than hold it forever
        full = (*key, concat.reference, concat.total)
        parts = self._parts.setdefault(full, {})
        self._since.setdefault(full, now)
        parts[concat.number] = body
        if len(parts) < concat.total:
            return None
        del self._parts[full], self._since[full]
        return b"".join(parts[n] for n in range(1, concat.total + 1))

    def __len__(self) -> int:
        return len(self._parts)


# How far the SMSC's clock and ours may disagree, and how long a submit may take to be recorded:
# a receipt's submit date is trusted to within this much.
RECEIPT_CLOCK_SLACK = timedelta(minutes=2)

# Delivery receipts: "id:… sub:… dlvrd:… submit date:… done date:… stat:DELIVRD err:… text:…"
_RECEIPT_FIELD = re.compile(r"(\w+(?: date)?):(\S*)", re.IGNORECASE)
_TEXT_FIELD = re.compile(r"\btext:", re.IGNORECASE)
# By the first five letters, so DELIVRD and DELIVERED (seen from some SMSCs) both match.
_STATS = {"DELIV": "delivered", "UNDEL": "undeliverable", "EXPIR": "expired", "REJEC": "rejected",
          "DELET": "undeliverable"}
# message_state TLV (SMPP 3.4 §5.2.28) for receipts that carry no parsable text.
_MESSAGE_STATES = {2: "delivered", 3: "expired", 4: "undeliverable", 5: "undeliverable", 8: "rejected"}


def parse_receipt(text: str) -> dict[str, str]:
    """The fields of a standard receipt text, keys lower-cased (``id``, ``stat``, ``submit date`` …)."""
    # Everything after "text:" is message text, which may itself contain "id:" and the like.
    match = _TEXT_FIELD.search(text)
    head = text[:match.start()] if match else text
    fields = {m[1].lower(): m[2] for m in _RECEIPT_FIELD.finditer(head)}
    if match:
        fields["text"] = text[match.end():]
    return fields


def receipt_submit_time(fields: dict[str, str], zone: tzinfo | None, now: datetime) -> datetime | None:
    """When a receipt says its message was submitted (``submit date``, YYMMDDhhmm or YYMMDDhhmmss,
    the start of that minute), read in the SMSC's zone ``zone`` (None: this host's), as UTC.

    None when the receipt has no readable submit date, or when its dates cannot be right in that
    zone — done date (or submit date) later than ``now`` by more than :data:`RECEIPT_CLOCK_SLACK`,
    or a submit after the done date: the SMSC's clock or zone is then not the one configured, and
    a date read wrong would match the receipt to the wrong text."""
    submitted = _receipt_date(fields.get("submit date", ""), zone)
    if submitted is None:
        return None
    done = _receipt_date(fields.get("done date", ""), zone)
    latest = now + RECEIPT_CLOCK_SLACK
    if submitted > latest or (done is not None and (done > latest or submitted > done + timedelta(minutes=1))):
        return None
    return submitted


def _receipt_date(value: str, zone: tzinfo | None) -> datetime | None:
    if not value.isdigit() or len(value) not in (10, 12):
        return None
    try:
        local = datetime.strptime(("20" + value)[:12], "%Y%m%d%H%M")
    except ValueError:
        return None
    return (local.replace(tzinfo=zone) if zone is not None else local.astimezone()).astimezone(UTC)


def receipt_state(stat: str | None, message_state: int | None = None) -> str:
    """delivered | undeliverable | expired | rejected | unknown, from ``stat`` or the message_state TLV."""
    if stat:
        return _STATS.get(stat.strip().upper()[:5], "unknown")
    return _MESSAGE_STATES.get(message_state or 0, "unknown")


def mask_number(number: str) -> str:
    """``13800000001`` → ``138****0001``: enough to tell numbers apart in logs without recording them."""
    if len(number) >= 8:
        return number[:3] + "*" * (len(number) - 7) + number[-4:]
    return "*" * max(len(number) - 2, 0) + number[-2:]
