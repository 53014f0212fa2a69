import struct

import pytest

from farm.errors import WeightsError
from farm.model import weights


def test_baseline_is_the_plugins_weights(baseline):
    assert len(baseline.data) == weights.SIZE == 17136
    assert baseline.sha256.startswith("de088dc7285ad431")


def test_write_and_load_round_trip(baseline, tmp_path):
    path = tmp_path / "w.weights"
    weights.write(baseline, path)
    assert weights.load(path).data == baseline.data
    assert [p.name for p in tmp_path.iterdir()] == ["w.weights"]


def _corrupt(data, offset, fmt, value):
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d[:100], "truncated"),
    (lambda d: b"", "only 0 bytes"),
    (lambda d: _corrupt(d, 0, "<I", 0x12345678), "bad signature"),
    (lambda d: _corrupt(d, 4, "<I", 2), "feature versions"),
    (lambda d: _corrupt(d, 12, "<I", 5), "5 buffers"),
    (lambda d: _corrupt(d, 20, "<I", 41), "shape"),
    (lambda d: d + b"\0\0\0\0", "trailing"),
    (lambda d: _corrupt(d, 16 + 16, "<f", float("nan")), "NaN"),
])
def test_corrupt_files_are_rejected_with_the_reason(baseline, tmp_path, mutate, words):
    path = tmp_path / "bad.weights"
    path.write_bytes(mutate(baseline.data))
    with pytest.raises(WeightsError, match=words) as info:
        weights.load(path)
    assert str(path) in str(info.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        weights.load(tmp_path / "nope.weights")
