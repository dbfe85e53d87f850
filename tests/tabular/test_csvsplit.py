"""The CSV record splitter: physical lines -> whole records with their first line."""
import csv
import io

import pytest

from beam_jobs.tabular.csvsplit import CsvSplitter, count_lines, ends_in_quotes


def _split(data: bytes, block_lines: int = 1000):
    """(first line, raw) of every record, the unterminated tail, lines read; data fed
    as readline() would return it, block_lines lines per feed."""
    lines = io.BytesIO(data).readlines()
    s = CsvSplitter()
    out, multiline = [], []
    for i in range(0, len(lines), block_lines):
        chunk = s.feed(lines[i:i + block_lines])
        assert len(chunk.lines) == len(chunk.raw)
        out += list(zip(chunk.lines, chunk.raw))
        multiline.append(chunk.multiline)
    return out, s.finish(), s.lines_read, multiline


@pytest.mark.parametrize("data, records", [
    (b"a,b\n1,2\n", [(1, b"a,b\n"), (2, b"1,2\n")]),
    (b"a,b\n1,2", [(1, b"a,b\n"), (2, b"1,2")]),  # no final newline
    (b'a,b\n1,"x\ny"\n2,3\n', [(1, b"a,b\n"), (2, b'1,"x\ny"\n'), (4, b"2,3\n")]),
    (b'1,"x\n\n\ny"\n2,3\n', [(1, b'1,"x\n\n\ny"\n'), (5, b"2,3\n")]),  # blank lines in a value
    (b'1,"a""b",c\n2,3\n', [(1, b'1,"a""b",c\n'), (2, b"2,3\n")]),  # escaped quote
    (b'1,"a""\nb",c\n2\n', [(1, b'1,"a""\nb",c\n'), (3, b"2\n")]),  # "" then a line break
    (b'1,""\n2\n', [(1, b'1,""\n'), (2, b"2\n")]),  # empty quoted field
    (b'1,a"b,c\n2\n', [(1, b'1,a"b,c\n'), (2, b"2\n")]),  # mid-field quote: literal
    (b'1,"a"b,"c\nd"\n2\n', [(1, b'1,"a"b,"c\nd"\n'), (3, b"2\n")]),  # junk after a close
    (b'"h\n1",b\n1,2\n', [(1, b'"h\n1",b\n'), (3, b"1,2\n")]),  # first field quoted
    (b"1,2\r\n3,4\r\n", [(1, b"1,2\r\n"), (2, b"3,4\r\n")]),  # CRLF
    (b'1,"x\r\ny"\r\n3,4\r\n', [(1, b'1,"x\r\ny"\r\n'), (3, b"3,4\r\n")]),
    (b"1,2\r3,4\r5,6\n", [(1, b"1,2\r"), (2, b"3,4\r"), (3, b"5,6\n")]),  # CR only
    (b'1,"x\ry"\r3,4', [(1, b'1,"x\ry"\r'), (3, b"3,4")]),  # CR inside quotes
    (b"1,2\n\n3,4\n", [(1, b"1,2\n"), (2, b"\n"), (3, b"3,4\n")]),  # blank line: a record
    (b"1,\x00,2\n", [(1, b"1,\x00,2\n")]),
])
def test_records_and_first_lines(data, records):
    out, unterminated, lines_read, _ = _split(data)
    assert out == records and unterminated is None
    assert lines_read == sum(count_lines(r) for _, r in records)
    # the same records however the lines are cut into blocks
    assert _split(data, block_lines=1)[0] == records
    # and the same records as Python's csv module reads from the whole file
    text = data.decode("utf-8")
    assert [r for r in csv.reader(io.StringIO(text, newline="")) if r] == \
        [next(csv.reader([raw.decode().rstrip("\r\n")])) for _, raw in records
         if raw.strip(b"\r\n")]


def test_record_across_a_block_boundary_comes_whole_in_the_next_chunk():
    s = CsvSplitter(next_line=2)
    first = s.feed([b"1,a\n", b'2,"b\n'])
    second = s.feed([b'c"\n', b"3,d\n"])
    assert (list(first.lines), first.raw, first.multiline) == ([2], [b"1,a\n"], False)
    assert (list(second.lines), second.raw, second.multiline) == \
        ([3, 5], [b'2,"b\nc"\n', b"3,d\n"], True)
    assert s.finish() is None and s.lines_read == 5


def test_a_clean_block_passes_through_as_lines():
    block = [b"1,a\n", b"2,b\r\n"]
    chunk = CsvSplitter(next_line=7).feed(block)
    assert chunk.lines == range(7, 9) and chunk.raw is block and chunk.data == b"1,a\n2,b\r\n"


def test_unterminated_quote_is_one_record_naming_its_first_line():
    out, unterminated, lines_read, _ = _split(b'a,b\n1,2\n3,"x\n4,5\n6,7\n')
    assert out == [(1, b"a,b\n"), (2, b"1,2\n")]
    assert (unterminated.line, unterminated.raw, unterminated.num_lines) == \
        (3, b'3,"x\n4,5\n6,7\n', 3)
    assert unterminated.reason == ("unterminated quoted field: the record starting on "
                                   "line 3 runs to the end of the file (3 lines)")
    assert lines_read == 5


@pytest.mark.parametrize("line, inside, expected", [
    (b"a,b\n", False, False),
    (b'a,"b\n', False, True),
    (b'"a,b\n', False, True),
    (b'a,"b",c\n', False, False),
    (b'a,"b""\n', False, True),
    (b'a,"b""",c\n', False, False),
    (b'a"b,c\n', False, False),
    (b'x",c\n', True, False),
    (b'x"",c\n', True, True),
    (b'x",c,"d\n', True, True),
    (b"no quote\n", True, True),
])
def test_ends_in_quotes(line, inside, expected):
    assert ends_in_quotes(line, inside) is expected


def test_a_quoted_block_of_one_line_records_passes_through():
    block = [b'1,"a",b\n', b'2,"c""d,",e\n']
    chunk = CsvSplitter(next_line=2).feed(block)
    assert chunk.lines == range(2, 4) and chunk.raw is block and not chunk.multiline


def test_a_block_whose_last_line_opens_a_quote_holds_it_back():
    s = CsvSplitter(next_line=2)
    chunk = s.feed([b'1,"a",b\n', b'2,"b\n'])
    assert (list(chunk.lines), chunk.raw) == ([2], [b'1,"a",b\n'])
    assert (s.finish().line, s.lines_read) == (3, 3)
