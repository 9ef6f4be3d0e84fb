"""One process of ``server.csv_decode``: decodes the byte ranges of a file it is asked for to UTF-8, one at a time.

Run as ``python -I -S csv_decode_worker.py`` (standard library only: nothing of the server is imported).
On stdin, each request is a header ``>HHQQ`` (encoding name length, path length, offset, byte count), the
encoding's name and the file's path; the worker reads the range from the file itself (no bytes of the file
cross the pipe). On stdout, each answer is ``>BQB``: 0 (decoded) or 1 (invalid); the length of the UTF-8
that follows, or the offset in the range of the first byte the encoding cannot decode; 1 if the range holds
a double quote. Ends at EOF.
"""

import os
import struct
import sys

REQUEST = struct.Struct(">HHQQ")
ANSWER = struct.Struct(">BQB")
DECODED, INVALID = 0, 1


def read_exactly(stream, size):
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return data


def read_range(fd, offset, size):
    parts = []
    while size:
        part = os.pread(fd, size, offset)
        if not part:
            raise EOFError
        parts.append(part)
        offset += len(part)
        size -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def serve(requests, answers):
    opened = (None, -1)  # (path, descriptor) of the file being read
    try:
        while True:
            try:
                name_length, path_length, offset, size = REQUEST.unpack(read_exactly(requests, REQUEST.size))
                encoding = read_exactly(requests, name_length).decode("ascii")
                path = read_exactly(requests, path_length)
            except EOFError:
                return
            if opened[0] != path:
                if opened[1] >= 0:
                    os.close(opened[1])
                opened = (path, os.open(path, os.O_RDONLY | os.O_CLOEXEC))
            chunk = read_range(opened[1], offset, size)
            quote = int(b'"' in chunk)  # 0x22 is never part of a multi-byte character in these encodings
            try:
                text = chunk.decode(encoding).encode("utf-8")
            except UnicodeDecodeError as exc:
                answers.write(ANSWER.pack(INVALID, exc.start, quote))
            else:
                answers.write(ANSWER.pack(DECODED, len(text), quote))
                answers.write(text)
            answers.flush()
    finally:
        if opened[1] >= 0:
            os.close(opened[1])


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
