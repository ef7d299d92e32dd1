"""Regression test: agreement: label CSVs that are not UTF-8."""

from __future__ import annotations

import pytest

from slim_leakage.errors import (
    ValidationError,
)


# -- agreement: label CSVs that are not UTF-8 -----------------------------------------------------
def test_labels_csv_not_utf8_is_a_validation_error(tmp_path):
    from slim_leakage.judge.agreement import read_labels

    path = tmp_path / "labels.csv"
    path.write_bytes(
        "sample_id,method,annotator,label\ns1,m,j\u00fcrgen,no-change\n".encode("latin-1")
    )
    with pytest.raises(ValidationError, match=r"labels\.csv.*not UTF-8.*0xfc on line 2"):
        read_labels(path)


def test_labels_csv_with_a_bom_still_reads(tmp_path):
    from slim_leakage.judge.agreement import read_labels

    path = tmp_path / "labels.csv"
    path.write_bytes(b"\xef\xbb\xbfsample_id,method,annotator,label\ns1,m,a,no-change\n")
    assert [row.label for row in read_labels(path)] == ["no-change"]
