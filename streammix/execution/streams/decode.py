"""Rows from broker messages: JSON (a field holding a list of numbers, a list of rows, or
named numeric fields) and packed little-endian float32/float64 (one row or many rows per
message). A message that cannot be decoded raises BadMessage naming its id and why."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ...errors import InvalidInputError

FORMATS = ("json", "packed")


class BadMessage(InvalidInputError):
    """A stream message that is not rows of the expected shape and type."""

    def __init__(self, message_id: str, reason: str):
        super().__init__(f"message {message_id}: {reason}")
        self.message_id = message_id
        self.reason = reason


@dataclass(frozen=True)
class MessageDecoder:
    """How a message's fields become rows.

    ``format``: 'json' or 'packed'. ``field``: the field holding the data (JSON: a list of
    numbers, or a list of such lists; packed: the raw bytes). ``columns`` (JSON only):
    named numeric fields, one row per message, instead of ``field``. ``dtype`` (packed):
    'float32' or 'float64', little-endian. ``n_features``: the row length; when None it
    is taken from the first message and then enforced."""

    format: str = "packed"
    field: str = "x"
    columns: tuple[str, ...] | None = None
    dtype: str = "float64"
    n_features: int | None = None
    #: the row length was learnt from a message (packed without n_features): every
    #: message must then be exactly one row of it
    one_row: bool = False

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}; got {self.format!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64; got {self.dtype!r}")
        if self.columns is not None and self.format != "json":
            raise ValueError("columns are for the json format")

    def with_features(self, n_features: int) -> "MessageDecoder":
        """This decoder with a row length learnt from a message or a model (a packed
        message then stays one row: several rows per message need n_features set)."""
        return MessageDecoder(self.format, self.field, self.columns, self.dtype, n_features,
                              one_row=self.format == "packed")

    def decode(self, message_id: str, fields: dict) -> np.ndarray:
        """(rows, n_features) float64, finite; BadMessage otherwise."""
        if self.columns is not None:
            rows = self._columns(message_id, fields)
        else:
            raw = fields.get(self.field, fields.get(self.field.encode()))
            if raw is None:
                raise BadMessage(message_id, f"no field {self.field!r} (fields: "
                                 f"{sorted(_text(k) for k in fields)})")
            rows = (self._packed(message_id, raw) if self.format == "packed"
                    else self._json(message_id, raw))
        if rows.size == 0:  # e.g. JSON [] or [[]]: no rows, or rows of no values
            raise BadMessage(message_id, "no values")
        if self.n_features is not None and rows.shape[1] != self.n_features:
            raise BadMessage(message_id, f"rows of {rows.shape[1]} values, expected "
                             f"{self.n_features}")
        if not np.isfinite(rows).all():
            r, c = np.argwhere(~np.isfinite(rows))[0]
            raise BadMessage(message_id, f"row {r}, column {c} is {rows[r, c]} (NaN/inf)")
        return rows

    def _packed(self, message_id: str, raw) -> np.ndarray:
        if isinstance(raw, str):
            raw = raw.encode("latin-1")
        item = np.dtype(self.dtype).itemsize
        if len(raw) == 0 or len(raw) % item:
            raise BadMessage(message_id, f"{len(raw)} bytes is not a whole number of "
                             f"{self.dtype} values")
        values = np.frombuffer(raw, dtype=np.dtype(self.dtype).newbyteorder("<"))
        if self.one_row and values.size != self.n_features:
            raise BadMessage(message_id, f"{values.size} values, but a message is one row "
                             f"of {self.n_features} (set source.n_features for several rows "
                             "per message)")
        d = self.n_features or values.size
        if values.size % d:
            raise BadMessage(message_id, f"{values.size} values is not a whole number of "
                             f"rows of {d}")
        # a view of the message's bytes (float32 is converted): the batch's concatenation
        # makes the one copy
        return values.astype(np.float64, copy=False).reshape(-1, d)

    def _json(self, message_id: str, raw) -> np.ndarray:
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BadMessage(message_id, f"field {self.field!r} is not JSON (or nested "
                             "too deeply)") from None
        if isinstance(doc, list) and doc and all(isinstance(r, list) for r in doc):
            rows = doc
        elif isinstance(doc, list):
            rows = [doc]
        else:
            raise BadMessage(message_id, f"field {self.field!r} is not a list of numbers")
        width = {len(r) for r in rows}
        kinds = {type(v) for r in rows for v in r}  # JSON numbers are int or float
        if len(width) != 1 or not kinds <= {int, float}:
            raise BadMessage(message_id, f"field {self.field!r} is not a list of numbers "
                             "(or of equal-length lists of numbers)")
        try:
            return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
        except OverflowError:  # an integer beyond float64
            raise BadMessage(message_id, f"field {self.field!r} holds a number out of the "
                             "float64 range") from None

    def _columns(self, message_id: str, fields: dict) -> np.ndarray:
        text = {_text(k): v for k, v in fields.items()}
        row = []
        for c in self.columns:
            if c not in text:
                raise BadMessage(message_id, f"no field {c!r}")
            try:
                value = json.loads(text[c])
            except (ValueError, UnicodeDecodeError, RecursionError):
                value = None
            if not _is_number(value):
                raise BadMessage(message_id, f"field {c!r} is not a number")
            try:
                row.append(float(value))
            except OverflowError:
                raise BadMessage(message_id, f"field {c!r} is out of the float64 range") \
                    from None
        return np.asarray([row], dtype=np.float64)


def _is_number(v) -> bool:
    """A JSON number (NaN and inf included: the finiteness check names them)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _text(v) -> str:
    return v.decode(errors="backslashreplace") if isinstance(v, bytes) else str(v)


def encode_packed(rows: np.ndarray, dtype: str = "float64") -> bytes:
    """The packed form of ``rows`` (what a producer sends)."""
    return np.ascontiguousarray(rows, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()
