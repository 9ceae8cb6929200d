"""libmagic's answer for the strong signatures of common media formats, without its soft magic.

libmagic (5.44, measured on a 2-core machine through python-magic) costs 12 µs for a JPEG or a
PNG, whose rules it ranks first, but 90-250 µs for an MP3, FLAC, WAV, MP4, WebM, Ogg or WebP
file: it runs most of its several thousand soft-magic rules before those formats' (random bytes,
which nothing names, cost ~200 µs). At a million songs or videos that is minutes of CPU for
answers a few bytes at fixed offsets decide.

So `signature(head)` names the format's class from those bytes: the container and, where
libmagic's media type depends on it, the field it reads (an MP4 `ftyp`'s major brand, a
Matroska DocType, an Ogg stream's first codec header, a RIFF or IFF form type). `answer` asks
the host's libmagic once per class and process, on a reference header of that class built
here, and remembers its answer. The answer is therefore the host's libmagic's own for that
format (its version decides `audio/x-wav` or `audio/wav`), and the same for the same bytes on
every host with that version, whatever order the files come in.

What this skips: a rule elsewhere in the file that libmagic ranks above the format's own and that
the file's data happens to satisfy (a two-byte magic number at some offset of compressed
data). libmagic would then name that other format; here the file is what its header says.
Formats whose media type depends on more than a fixed field (TIFF, whose raw-camera variants
libmagic names by later tags; ZIP, by its first entry; bare MPEG audio frames, a two-byte
sync word random bytes also start with) are left to libmagic.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"  # libmagic's rule includes the first chunk
_EBML = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE = b"\x42\x82"
_EBML_SEARCH_BYTES = 4096
_OGG_FIRST_PACKET = 28  # a stream's first page has one segment: its 27-byte header, 1 lacing byte

# Start with -> class. Each class's media type is libmagic's for its reference header below.
_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (_JPEG, "jpeg"), (_PNG, "png"), (b"GIF87a", "gif87a"), (b"GIF89a", "gif89a"),
    (b"%PDF-", "pdf"), (b"fLaC", "flac"), (b"FLV\x01", "flv"), (b"\x00\x00\x01\xba", "mpeg-ps"),
)
_MIN_BYTES = 16  # a shorter file is left to libmagic, whose rules read that far
_ID3 = b"ID3"
_ID3_HEADER_BYTES = 10
_RIFF_FORMS = {b"WEBP": "riff-webp", b"WAVE": "riff-wave", b"AVI ": "riff-avi"}
_IFF_FORMS = {b"AIFF": "iff-aiff", b"AIFC": "iff-aifc"}
_FTYP_BRANDS = {
    b"isom": "ftyp-isom", b"iso2": "ftyp-iso2", b"mp41": "ftyp-mp41", b"mp42": "ftyp-mp42",
    b"avc1": "ftyp-avc1", b"M4A ": "ftyp-m4a", b"M4B ": "ftyp-m4b", b"M4V ": "ftyp-m4v",
    b"qt  ": "ftyp-qt", b"3gp4": "ftyp-3gp4", b"3gp5": "ftyp-3gp5", b"3g2a": "ftyp-3g2a",
    b"heic": "ftyp-heic", b"heix": "ftyp-heix", b"mif1": "ftyp-mif1", b"avif": "ftyp-avif",
}
# (version, layer) as the frame header codes them (version 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5;
# layer 1: III, 2: II, 3: I) that libmagic names: not MPEG-1 layer I, nor MPEG-2.5 layers I-II.
_MPEG_AUDIO = {(3, 1), (3, 2), (2, 1), (2, 2), (2, 3), (0, 1)}
_BMP_MIN_BYTES = 32  # through the width and height libmagic reads
_BMP_HEADER_BYTES = (12, 40, 52, 56, 64, 108, 124)  # OS/2 1.x, Windows 3.x ... BITMAPV5HEADER
_EBML_DOCTYPES = {b"webm": "ebml-webm", b"matroska": "ebml-matroska"}
_OGG_CODECS: tuple[tuple[bytes, str], ...] = (
    (b"\x01vorbis", "ogg-vorbis"), (b"OpusHead", "ogg-opus"), (b"\x7fFLAC", "ogg-flac"),
    (b"\x80theora", "ogg-theora"), (b"Speex   ", "ogg-speex"),
)


def signature(head: bytes) -> str | None:
    """The class of a common media format `head` starts with, or None (ask libmagic)."""
    if head.startswith(_ID3):
        inner = _format(head[_id3_size(head):])
        return None if inner is None else "id3+" + inner
    return _format(head)


def _id3_size(head: bytes) -> int:
    """An ID3v2 tag's length: libmagic names what follows it (an MP3 frame, FLAC ...). As
    libmagic counts it: the header and the size it gives, not a v2.4 footer (behind which
    libmagic finds the footer, and names nothing)."""
    if len(head) < _ID3_HEADER_BYTES or any(byte & 0x80 for byte in head[6:10]):
        return len(head)  # not a tag: nothing follows it
    size = 0
    for byte in head[6:10]:  # "syncsafe": 7 bits a byte
        size = size << 7 | byte
    return _ID3_HEADER_BYTES + size


def _format(head: bytes) -> str | None:
    if len(head) < _MIN_BYTES:
        return None
    for prefix, name in _PREFIXES:
        if head.startswith(prefix):
            return name
    kind = head[:4]
    if kind == b"RIFF":
        return _RIFF_FORMS.get(head[8:12])
    if kind == b"FORM":
        return _IFF_FORMS.get(head[8:12])
    if kind == _EBML:
        return _ebml_doctype(head)
    if kind == b"OggS" and head[26:27] == b"\x01":
        packet = head[_OGG_FIRST_PACKET:]
        return next((name for codec, name in _OGG_CODECS if packet.startswith(codec)), None)
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12])
    if kind[:2] == b"BM":
        return _bmp(head)
    return _mpeg_audio(head)


def _bmp(head: bytes) -> str | None:
    """A Windows bitmap: "BM", the file size, two reserved zero words, the pixels' offset,
    then the size of the header that follows, which tells the header's version. "BM" alone
    starts many files; libmagic wants the rest too."""
    header_bytes = int.from_bytes(head[14:18], "little")
    if (len(head) < _BMP_MIN_BYTES or head[6:10] != bytes(4)
            or header_bytes not in _BMP_HEADER_BYTES):
        return None
    return f"bmp-{header_bytes}"


def _mpeg_audio(head: bytes) -> str | None:
    """An MPEG audio frame header (MP3 and its layers): the 11-bit sync word, then a version,
    layer, bitrate and sample rate that are not reserved. libmagic names these `audio/mpeg`
    whatever follows; a bitrate of 0 ("free") or a reserved field it names nothing."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    if head[1] & 0xF6 == 0xF0:  # a 12-bit sync word and layer 0: AAC in ADTS frames
        return "adts"
    version, layer = head[1] >> 3 & 3, head[1] >> 1 & 3
    bitrate, sample_rate = head[2] >> 4, head[2] >> 2 & 3
    if (version, layer) not in _MPEG_AUDIO or bitrate in (0, 15) or sample_rate == 3:
        return None
    return f"mpeg-{version}{layer}"


def _ebml_doctype(head: bytes) -> str | None:
    """Matroska or WebM: the DocType element's text, found as libmagic finds it (the first
    DocType id after the EBML magic, its one-byte size skipped)."""
    at = head.find(_EBML_DOCTYPE, 4, _EBML_SEARCH_BYTES)
    if at < 0:
        return None
    size = head[at + 2] & 0x7F if len(head) > at + 2 else 0
    return _EBML_DOCTYPES.get(head[at + 3:at + 3 + size])


_answers: dict[str, str] = {}  # two threads may both ask for a class first: the same answer


def answer(name: str, libmagic: Callable[[bytes], str]) -> str:
    """libmagic's media type for the class `name` (`signature`'s), asked once a process."""
    found = _answers.get(name)
    if found is None:
        found = _answers[name] = libmagic(reference_header(name))
    return found


def classes() -> list[str]:
    """Every class `signature` can name but the ID3-tagged ones ("id3+" and one of these)."""
    return [*_REFERENCES, *(f"mpeg-{version}{layer}" for version, layer in sorted(_MPEG_AUDIO)),
            *(f"bmp-{header_bytes}" for header_bytes in _BMP_HEADER_BYTES)]


def reference_header(name: str) -> bytes:
    """A header of the class `name` as common encoders write it (ffmpeg, Pillow, cameras)."""
    if name.startswith("id3+"):
        return _ID3_TAG + reference_header(name[len("id3+"):])
    if name.startswith("bmp-"):
        header_bytes = int(name[len("bmp-"):])
        return (b"BM\x36\x24\x00\x00" + bytes(4) + (14 + header_bytes).to_bytes(4, "little")
                + header_bytes.to_bytes(4, "little") + b"\x40\x00\x00\x00\x30\x00\x00\x00"
                + bytes(header_bytes))
    if name.startswith("mpeg-") and name != "mpeg-ps":
        version, layer = int(name[5]), int(name[6])
        return bytes((0xFF, 0xE1 | version << 3 | layer << 1, 0x90, 0x64)) + bytes(64)
    return _REFERENCES[name]()


def _ftyp(brand: bytes, compatible: bytes) -> bytes:
    box = b"ftyp" + brand + b"\x00\x00\x02\x00" + compatible
    return (len(box) + 4).to_bytes(4, "big") + box + b"\x00\x00\x00\x08free\x00\x00\x10\x00mdat"


def _ebml(doctype: bytes) -> bytes:
    fields = (b"\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08"
              + _EBML_DOCTYPE + bytes([0x80 | len(doctype)]) + doctype
              + b"\x42\x87\x81\x04\x42\x85\x81\x02")
    return _EBML + bytes([0x80 | len(fields)]) + fields + b"\x18\x53\x80\x67\x01" + bytes(7)


def _ogg(packet: bytes) -> bytes:
    page = b"OggS\x00\x02" + bytes(8) + b"\x01\x00\x00\x00" + bytes(8) + b"\x01"
    return page + bytes([len(packet)]) + packet


def _riff(form: bytes, chunk: bytes) -> bytes:
    return b"RIFF" + (4 + len(chunk)).to_bytes(4, "little") + form + chunk


# ID3v2.4: one TSSE frame ("Lavf59.27.100", as ffmpeg writes it), then 10 bytes of padding.
_ID3_TAG = (b"ID3\x04\x00\x00\x00\x00\x00\x23TSSE\x00\x00\x00\x0f\x00\x00\x03Lavf59.27.100"
            + bytes(11))
_WAVE_FMT = (b"fmt \x10\x00\x00\x00\x01\x00\x02\x00\x44\xac\x00\x00\x10\xb1\x02\x00\x04\x00"
             b"\x10\x00data\x00\x10\x00\x00")
_AIFF_COMM = b"COMM\x00\x00\x00\x12\x00\x01\x00\x00\xac\x44\x00\x10\x40\x0e\xac\x44" + bytes(6)
_REFERENCES: dict[str, Callable[[], bytes]] = {
    "jpeg": lambda: _JPEG + b"\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
                    b"\xff\xdb\x00\x43\x00" + bytes(64),
    "png": lambda: _PNG + b"\x00\x00\x00\x40\x00\x00\x00\x30\x08\x02"
                   b"\x00\x00\x00\x2e\x29\xeb\x48",
    "gif87a": lambda: b"GIF87a\x40\x00\x30\x00\x81\x00\x00" + bytes(16),
    "gif89a": lambda: b"GIF89a\x40\x00\x30\x00\xf7\x1f\x00" + bytes(16),
    "flv": lambda: b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00\x12\x00\x00\xb8" + bytes(16),
    "mpeg-ps": lambda: b"\x00\x00\x01\xba\x21\x00\x01\x00\x01\xc3\x33\x67\x00\x00\x01\xbb"
                       + bytes(16),
    "adts": lambda: b"\xff\xf1\x50\x40\x21\x3f\xfc\xde\x02\x00Lavc59.37.100" + bytes(16),
    "pdf": lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
    "flac": lambda: b"fLaC\x00\x00\x00\x22\x12\x00\x12\x00\x00\x02\xf1\x00\x04\xf3\x0a\xc4"
                    b"\x40\xf0\x00\x00\xac\x44" + bytes(16),
    "riff-webp": lambda: _riff(b"WEBP", b"VP8 \x36\x00\x00\x00\x50\x03\x00\x9d\x01\x2a\x40"
                                        b"\x00\x30\x00" + bytes(16)),
    "riff-wave": lambda: _riff(b"WAVE", _WAVE_FMT),
    "riff-avi": lambda: _riff(b"AVI ", b"LIST\x38\x12\x00\x00hdrlavih\x38\x00\x00\x00"
                                       + bytes(56)),
    "iff-aiff": lambda: b"FORM\x00\x01\x58\xb6AIFF" + _AIFF_COMM,
    "iff-aifc": lambda: b"FORM\x00\x01\x58\xb6AIFC" + _AIFF_COMM,
    "ebml-webm": lambda: _ebml(b"webm"),
    "ebml-matroska": lambda: _ebml(b"matroska"),
    "ogg-vorbis": lambda: _ogg(b"\x01vorbis\x00\x00\x00\x00\x01\x44\xac\x00\x00" + bytes(13)),
    "ogg-opus": lambda: _ogg(b"OpusHead\x01\x01\x38\x01\x44\xac\x00\x00\x00\x00\x00"),
    "ogg-flac": lambda: _ogg(b"\x7fFLAC\x01\x00\x00\x01fLaC\x00\x00\x00\x22" + bytes(34)),
    "ogg-theora": lambda: _ogg(b"\x80theora\x03\x02\x01\x00\x04\x00\x03" + bytes(27)),
    "ogg-speex": lambda: _ogg(b"Speex   1.2.1" + bytes(67)),
    **{name: functools.partial(_ftyp, brand, brand + b"isomiso2mp41")
       for brand, name in _FTYP_BRANDS.items()},
}
