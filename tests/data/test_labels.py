from __future__ import annotations

import numpy as np
import pytest

from yolospan.data import format_label_line, parse_label_lines, read_label_file


def test_valid_lines_become_rows():
    rows, problems = parse_label_lines(["0 0.5 0.5 0.2 0.4", "", "  2 0.1 0.9 0.05 0.1  "], nc=3)
    assert problems == []
    np.testing.assert_allclose(rows, [[0, 0.5, 0.5, 0.2, 0.4], [2, 0.1, 0.9, 0.05, 0.1]])
    assert rows.dtype == np.float32


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("0 0.5 0.5 0.2", "expected 5 values (class cx cy w h), got 4"),
        ("0 0.5 0.5 0.2 0.4 0.1", "expected 5 values (class cx cy w h), got 6"),
        ("cat 0.5 0.5 0.2 0.4", "not a number in 'cat 0.5 0.5 0.2 0.4'"),
        ("0 nan 0.5 0.2 0.4", "non-finite value in '0 nan 0.5 0.2 0.4'"),
        ("-1 0.5 0.5 0.2 0.4", "class must be a non-negative integer, got '-1'"),
        ("1.5 0.5 0.5 0.2 0.4", "class must be a non-negative integer, got '1.5'"),
        ("3 0.5 0.5 0.2 0.4", "class 3 is outside the dataset's 3 classes (0-2)"),
        ("0 320 240 50 60", "coordinates must be normalised to [0, 1]"),
        ("0 0.5 0.5 0 0.4", "box width and height must be positive, got 0 x 0.4"),
    ],
)
def test_a_bad_line_is_skipped_with_its_file_and_line(line, reason):
    rows, problems = parse_label_lines(["1 0.5 0.5 0.2 0.2", line], path="labels/a.txt", nc=3)
    assert len(rows) == 1
    assert [str(p) for p in problems] == [f"labels/a.txt:2: {reason}"]


def test_without_nc_any_class_is_accepted():
    rows, problems = parse_label_lines(["41 0.5 0.5 0.2 0.2"])
    assert problems == [] and rows[0, 0] == 41


def test_rounding_at_the_border_is_tolerated_and_clipped():
    rows, problems = parse_label_lines(["0 0.5 0.5 1.0000001 0.2"])
    assert problems == [] and rows[0, 3] == 1.0


def test_a_missing_label_file_means_no_objects(tmp_path):
    rows, problems = read_label_file(tmp_path / "none.txt")
    assert rows.shape == (0, 5) and problems == []


def test_an_unreadable_label_file_is_one_problem(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"\xff\xfe\x00garbage")
    rows, problems = read_label_file(path)
    assert rows.shape == (0, 5)
    assert len(problems) == 1 and str(problems[0]).startswith(f"{path}: cannot read the label file")


def test_written_lines_read_back():
    line = format_label_line(2, 0.25, 0.5, 0.125, 1.0)
    assert line == "2 0.250000 0.500000 0.125000 1.000000"
    rows, _ = parse_label_lines([line])
    np.testing.assert_allclose(rows, [[2, 0.25, 0.5, 0.125, 1.0]])
