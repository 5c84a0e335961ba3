"""JSON values of TF Serving's REST API <-> Python values: request strings to UTF-8 bytes and `{"b64": ...}` to
bytes (`decode_value`), output tensors to JSON as TF Serving writes them (`encode_value`). Used by the REST front
end (`tflm.serving.rest`)."""

import base64
import json

import numpy as np

from tflm.serving.errors import ServingError


def decode_value(value, where):
    """JSON value -> Python value: strings to UTF-8 bytes, {"b64": ...} to bytes, lists recursively. A string
    that is not Unicode text (a lone surrogate such as "\\ud800", which JSON allows) is INVALID_ARGUMENT
    naming `where`, the element's index and the character."""
    try:
        return _decode(value, where)
    except _NotText as error:
        element = f" element {''.join(f'[{i}]' for i in error.indices)}" if error.indices else ""
        raise ServingError("INVALID_ARGUMENT", f"{where}{element}: the string {ascii(error.text[:40])} is not "
                                               f"Unicode text (a lone surrogate {ascii(error.text[error.position])} "
                                               f"at character {error.position}); send UTF-8 text, or bytes as "
                                               "{\"b64\": ...}") from None


class _NotText(Exception):
    """A JSON string holding a lone surrogate; `indices` (outermost first) fill in on the way out."""

    def __init__(self, text, position):
        super().__init__(text)
        self.text, self.position, self.indices = text, position, []


def _decode(value, where):
    if isinstance(value, list):
        decoded = []
        for index, item in enumerate(value):
            try:
                decoded.append(_decode(item, where))
            except _NotText as error:
                error.indices.insert(0, index)
                raise
        return decoded
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (ValueError, TypeError):
                raise ServingError("INVALID_ARGUMENT", f"{where}: invalid base64 in {{\"b64\": ...}}") from None
        raise ServingError("INVALID_ARGUMENT", f"{where}: unexpected JSON object {ascii(json.dumps(value)[:100])}")
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise _NotText(value, error.start) from None
    return value


def encode_value(value, name):
    """numpy value -> JSON value, as TF Serving writes it (strings as text, `*_bytes` outputs as base64)."""
    if isinstance(value, np.ndarray):
        return [encode_value(v, name) for v in value] if value.ndim else encode_value(value.item(), name)
    if isinstance(value, bytes):
        if not name.endswith("_bytes"):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, np.generic):
        return value.item()
    return value
