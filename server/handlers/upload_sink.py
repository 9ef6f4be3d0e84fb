"""Writes a streamed upload body to a file as it arrives, within a byte limit.

The body is either the raw CSV or a ``multipart/form-data`` form whose ``file``
part is the CSV (small text parts such as ``name`` are kept in ``fields``). Everything in a form
but the file's content is bounded as it arrives (``UPLOAD_FORM_FIELDS``, ``UPLOAD_FORM_BYTES``,
``UPLOAD_FIELD_BYTES``): past a bound ``feed`` raises, and the rest is never parsed.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from ..errors import InvalidRequestError, PayloadTooLargeError
from ..limits import UPLOAD_FIELD_BYTES, UPLOAD_FORM_BYTES, UPLOAD_FORM_FIELDS
from ..private_files import create_private_file

FILE_FIELD = "file"
OPTIONS = "send only the file and its options (name, encoding, delimiter)"


class UploadSink:
    def __init__(self, path: Path, content_type: str, limit: int):
        self.path = path
        self.limit = limit
        self.size = 0
        self.filename: str | None = None
        self.fields: dict[str, str] = {}
        self._parser = self._multipart_parser(content_type)
        self._complete = self._has_file = self._parser is None
        self._file: BinaryIO | None = create_private_file(path)
        self._part: dict[str, str] = {}
        self._header = [b"", b""]
        self._value = bytearray()
        self._parts = 0
        self._form_bytes = 0  # all but the file's content

    def _multipart_parser(self, content_type: str) -> MultipartParser | None:
        kind, options = parse_options_header(content_type)
        if kind != b"multipart/form-data":
            return None
        boundary = options.get(b"boundary")
        if not boundary:
            raise InvalidRequestError("The multipart form has no boundary.")
        return MultipartParser(boundary, {
            "on_part_begin": self._begin_part,
            "on_header_field": lambda data, start, end: self._add_header(0, data[start:end]),
            "on_header_value": lambda data, start, end: self._add_header(1, data[start:end]),
            "on_header_end": self._end_header,
            "on_part_data": lambda data, start, end: self._part_data(data[start:end]),
            "on_part_end": self._end_part,
            "on_end": self._end,
        })

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the body."""
        if self._parser is None:
            self._write(chunk)
            return
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise InvalidRequestError(f"The multipart form is malformed: {exc}.") from exc

    def close(self) -> None:
        """The body is complete; the file must hold a CSV."""
        self._close_file()
        if not self._complete:
            raise InvalidRequestError("The form ends in the middle of a part; send the whole file again.")
        if not self._has_file:
            raise InvalidRequestError(f"The form has no {FILE_FIELD!r} part with the CSV file.")

    def discard(self) -> None:
        """Close and delete the file; safe to call more than once."""
        self._close_file()
        self.path.unlink(missing_ok=True)

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadTooLargeError(
                f"The file is larger than the limit of {self.limit // (1024 * 1024)} MB.",
                {"limit_bytes": self.limit})
        assert self._file is not None
        self._file.write(data)

    def _count_form_bytes(self, size: int) -> None:
        self._form_bytes += size
        if self._form_bytes > UPLOAD_FORM_BYTES:
            raise PayloadTooLargeError(
                f"An upload form may have at most {UPLOAD_FORM_BYTES // 1024} KB besides the file; {OPTIONS}.",
                {"limit_bytes": UPLOAD_FORM_BYTES}, code="form_too_large")

    # multipart callbacks -----------------------------------------------------
    def _begin_part(self) -> None:
        self._parts += 1
        if self._parts > UPLOAD_FORM_FIELDS + 1:
            raise PayloadTooLargeError(
                f"An upload form may have at most {UPLOAD_FORM_FIELDS} fields besides the {FILE_FIELD!r} part; {OPTIONS}.",
                {"limit_fields": UPLOAD_FORM_FIELDS}, code="form_too_large")

    def _add_header(self, index: int, data: bytes) -> None:
        self._count_form_bytes(len(data))
        self._header[index] += data

    def _end_header(self) -> None:
        field, value = self._header
        self._header = [b"", b""]
        if field.lower() == b"content-disposition":
            _, options = parse_options_header(value)
            self._part = {k.decode(): v.decode("utf-8", "replace") for k, v in options.items()}

    def _part_data(self, data: bytes) -> None:
        if self._part.get("name") == FILE_FIELD:
            self._has_file = True
            self.filename = self._part.get("filename")
            self._write(data)
        else:
            self._count_form_bytes(len(data))
            self._value += data
            if len(self._value) > UPLOAD_FIELD_BYTES:
                raise InvalidRequestError(f"The form field {self._part.get('name')!r} is too long.")

    def _end(self) -> None:
        self._complete = True

    def _end_part(self) -> None:
        name = self._part.get("name")
        if name and name != FILE_FIELD:
            self.fields[name] = self._value.decode("utf-8", "replace")
        self._value = bytearray()
        self._part = {}
