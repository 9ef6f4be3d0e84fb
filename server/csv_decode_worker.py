"""One process of ``server.csv_decode``: decodes the chunks it is sent to UTF-8, one at a time.

Run as ``python -I -S csv_decode_worker.py`` (standard library only: nothing of the server is imported).
On stdin, each request is a header ``>HI`` (encoding name length, chunk length), the encoding's name and
the chunk. On stdout, each answer is ``>BQ`` (0: decoded, 1: invalid) and then either the length and
the UTF-8 bytes, or the offset in the chunk of the first byte the encoding cannot decode. Ends at EOF.
"""

import struct
import sys

REQUEST = struct.Struct(">HI")
ANSWER = struct.Struct(">BQ")
DECODED, INVALID = 0, 1


def read_exactly(stream, size):
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return data


def serve(requests, answers):
    while True:
        try:
            name_length, size = REQUEST.unpack(read_exactly(requests, REQUEST.size))
            encoding = read_exactly(requests, name_length).decode("ascii")
            chunk = read_exactly(requests, size)
        except EOFError:
            return
        try:
            text = chunk.decode(encoding).encode("utf-8")
        except UnicodeDecodeError as exc:
            answers.write(ANSWER.pack(INVALID, exc.start))
        else:
            answers.write(ANSWER.pack(DECODED, len(text)))
            answers.write(text)
        answers.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
