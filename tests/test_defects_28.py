"""Issue 28: every label a fit can read is checked when a profile is read; every
shipped block profile round-trips through a Once-for-All lookup table and a
block table; a full disk is a named error that leaves nothing partial.

Fast: small copies of shipped profiles, a simulator for profile_device, and a
fake ``os.write`` for the full disk."""

import csv
import errno
import json
import math
import os
import re
from pathlib import Path

import pytest
import torch

from hardware_profiles import read_profile
from hardware_profiles.dataset import BLOCK_DATA_DIR, DATA_DIR, shipped_block_profiles
from ofa import io as ofa_io
from ofa.errors import DiskFullError, ProfileError
from ofa_pipeline.commands import fit_predictor, import_profile, profile_device

TIMED = DATA_DIR / "mbv3-small_cpu-ort.jsonl"  # latency_ms and cpu_time_ms; default label cpu_time_ms.p10
CORRECTED = DATA_DIR / "mbv3-small-r20-32_cpu-ort.jsonl"  # timed beside the reference: corrected_* labels
BLOCKS = BLOCK_DATA_DIR / "mbv3-small_cpu-ort.jsonl"
LUT = Path(__file__).parent / "data" / "imports" / "ofa-lut" / "note10_160_lookup_table.yaml"


def copy_with(source: Path, out: Path, changes=(), records: int = 20) -> Path:
    """The header and first ``records`` records of ``source``, with ``changes``
    (``(line, "dotted.field", value)``) made."""
    lines = source.read_text().splitlines()[: records + 1]
    for line, field, value in changes:
        record = json.loads(lines[line - 1])
        *parents, last = field.split(".")
        target = record
        for key in parents:
            target = target[key]
        target[last] = value
        lines[line - 1] = json.dumps(record)
    out.write_text("\n".join(lines) + "\n")
    return out


# --- every label a fit can use is checked when the profile is read ------------------------------------------
LABEL_CASES = [  # (profile, line, field, bad value): each kind of label a fit can choose
    (TIMED, 3, "latency_ms.p10", -1.0),
    (TIMED, 4, "latency_ms.median", 0),
    (TIMED, 5, "cpu_time_ms.median", math.nan),
    (TIMED, 6, "cpu_time_ms.p10", -1.0),  # the default label of a timed profile without the reference
    (TIMED, 7, "cpu_time_ms.mean", math.inf),
    (TIMED, 8, "cpu_time_ms.p90", "fast"),
    (CORRECTED, 3, "drift.relative.cpu_time_ms.p10", math.nan),  # corrected_cpu_time_ms.p10, today's default
    (CORRECTED, 4, "drift.relative.latency_ms.median", -0.5),  # corrected_latency_ms
    (CORRECTED, 5, "drift.reference_ms.cpu_time_ms", 0.0),  # the scale of every corrected_cpu_time_ms label
    (BLOCKS, 3, "cpu_time_ms.p10", math.nan),  # block profiles: the same check
    (BLOCKS, 4, "latency_ms.median", -2.0),
    (TIMED, 9, "cpu_time_ms.std", math.nan),  # not a label, but intervals read the spread
]


@pytest.mark.parametrize("source, line, field, value", LABEL_CASES,
                         ids=[f"{s.parent.name}/{s.stem}:{f}={v}" for s, _, f, v in LABEL_CASES])
def test_every_label_is_checked_when_the_profile_is_read(tmp_path, source, line, field, value):
    path = copy_with(source, tmp_path / "profile.jsonl", [(line, field, value)])
    with pytest.raises(ProfileError, match=rf"^{re.escape(str(path))}:{line}: {re.escape(field)} is "
                                           rf"{re.escape(repr(value))}; .*finite"):
        read_profile(path)


def test_clean_copies_read(tmp_path):
    for source in (TIMED, CORRECTED, BLOCKS):
        assert len(read_profile(copy_with(source, tmp_path / source.name))) == 20
    # a simulator may price a block (an embedding lookup) at nothing; a whole network, never
    free = copy_with(BLOCKS, tmp_path / "free.jsonl", [(3, "latency_ms.median", 0.0)])
    assert read_profile(free).latencies("latency_ms", "median")[1] == 0


def fit(tmp_path, profile: Path, *options: str) -> tuple[list[str], Path]:
    out = tmp_path / "fit" / "predictor.skops"
    return ["--profile", str(profile), "--out", str(out), "--model", "lut", "--cv", "2", *options], out


def test_fit_predictor_names_a_nan_in_the_chosen_label(tmp_path, capsys):
    profile = copy_with(TIMED, tmp_path / "p.jsonl", [(5, "cpu_time_ms.median", math.nan)])
    argv, out = fit(tmp_path, profile, "--metric", "cpu_time_ms", "--statistic", "median")
    assert fit_predictor.main(argv) == 2  # was a raw scikit-learn ValueError
    assert f"error: ProfileError: {profile}:5: cpu_time_ms.median is nan" in capsys.readouterr().err
    assert not out.parent.exists()


def test_fit_predictor_refuses_a_bad_value_outside_the_default_label(tmp_path, capsys):
    profile = copy_with(TIMED, tmp_path / "p.jsonl", [(3, "latency_ms.median", -1.0),
                                                      (5, "cpu_time_ms.mean", math.nan)])
    argv, out = fit(tmp_path, profile)  # default label cpu_time_ms.p10: was fitted, exit code 0
    assert fit_predictor.main(argv) == 2
    assert f"error: ProfileError: {profile}:3: latency_ms.median is -1.0" in capsys.readouterr().err
    assert not out.parent.exists()


# --- Once-for-All lookup tables and block tables keep every shipped block profile ---------------------------
@pytest.fixture(params=shipped_block_profiles())
def shipped_block_profile(request, tmp_path):
    """A shipped block profile and its space as a file (what --space takes)."""
    profile = read_profile(BLOCK_DATA_DIR / f"{request.param}.jsonl")
    space = tmp_path / "space.json"
    space.write_text(json.dumps(profile.header["space"]))
    return profile, space


def by_key(profile) -> dict[str, dict]:
    return {record["key"]: record["latency_ms"] for record in profile.records}


def test_ofa_lut_export_and_import_round_trip(shipped_block_profile, tmp_path):
    source, space = shipped_block_profile
    lut, back = tmp_path / "lut.yaml", tmp_path / "back.jsonl"
    assert import_profile.main(["--format", "ofa-lut", "--export", str(source.path), "--out", str(lut)]) == 0
    assert import_profile.main(["--format", "ofa-lut", str(lut), "--space", str(space), "--device", source.device,
                                "--out", str(back)]) == 0
    original, again = by_key(source), by_key(read_profile(back))
    assert again.keys() == original.keys()  # the runtime's null block (timed backends) included
    for key, stats in original.items():
        assert (again[key]["mean"], again[key]["std"], again[key]["runs"]) == (
            pytest.approx(stats["mean"], rel=1e-12), pytest.approx(stats["std"], rel=1e-12), stats["runs"]), key


def test_a_block_table_copied_from_the_profile_imports(shipped_block_profile, tmp_path):
    source, space = shipped_block_profile
    table, back = tmp_path / "blocks.csv", tmp_path / "back.jsonl"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["block", "median_ms", "std_ms", "runs"])
        writer.writerows([r["key"], repr(r["latency_ms"]["median"]), repr(r["latency_ms"]["std"]),
                          r["latency_ms"]["runs"]] for r in source.records)
    assert import_profile.main(["--format", "table", str(table), "--space", str(space), "--device", source.device,
                                "--block-column", "block", "--latency-column", "median_ms", "--std-column", "std_ms",
                                "--runs-column", "runs", "--out", str(back)]) == 0
    original, again = by_key(source), by_key(read_profile(back))
    assert again.keys() == original.keys()
    assert all(again[k]["median"] == pytest.approx(v["median"], rel=1e-12) for k, v in original.items())


# --- a full disk is a named error, and nothing partial is left ----------------------------------------------
class FullDisk:
    """``os.write`` on a disk that fills up: after ``room`` more whole writes, the
    next write takes half its bytes and every later one fails with ``error``."""

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch
        self.real = os.write

    def fill(self, room: int = 0, error: int = errno.ENOSPC) -> None:
        self.room, self.half_taken, self.error = room, False, error
        self.monkeypatch.setattr(os, "write", self._write)

    def _write(self, fd, data):
        if self.room > 0:
            self.room -= 1
            return self.real(fd, data)
        if not self.half_taken and len(data) > 1:
            self.half_taken = True
            return self.real(fd, bytes(data[: len(data) // 2]))
        raise OSError(self.error, os.strerror(self.error))


@pytest.fixture
def full_disk(monkeypatch):
    return FullDisk(monkeypatch)


def disk_full_message(path: Path, reason: str = "no space left on device") -> str:
    return rf"cannot write {re.escape(str(path))}: {reason}; it needs \d+ bytes"


WRITERS = {  # every writer of ofa.io: the commands write through them (specialize, import-pretrained included)
    "atomic_write_bytes": lambda path: ofa_io.atomic_write_bytes(path, b"x" * 5000),
    "atomic_write_text": lambda path: ofa_io.atomic_write_text(path, "x" * 5000),
    "atomic_write_json": lambda path: ofa_io.atomic_write_json(path, {"x": "y" * 5000}),
    "atomic_torch_save": lambda path: ofa_io.atomic_torch_save({"weight": torch.zeros(2000)}, path),
    "append_jsonl": lambda path: ofa_io.append_jsonl(path, {"x": "y" * 5000}),
}


@pytest.mark.parametrize("name", WRITERS)
@pytest.mark.parametrize("error, reason", [(errno.ENOSPC, "no space left on device"),
                                           (errno.EDQUOT, "disk quota exceeded")])
def test_every_writer_names_a_full_disk_and_leaves_the_file_as_it_was(tmp_path, full_disk, name, error, reason):
    old = b'{"old":1}\n'
    reference = tmp_path / "reference"
    reference.write_bytes(old)
    WRITERS[name](reference)  # what the write needs, while there is room
    needed = reference.stat().st_size - (len(old) if name == "append_jsonl" else 0)
    path = tmp_path / "out" / "file"
    path.parent.mkdir()
    path.write_bytes(old)
    full_disk.fill(error=error)
    with pytest.raises(DiskFullError, match=rf"^cannot write {re.escape(str(path))}: {reason}; it needs "
                                            rf"{needed} bytes, \d+ bytes.* are free there"):
        WRITERS[name](path)
    assert path.read_bytes() == old
    assert [p.name for p in path.parent.iterdir()] == ["file"]  # no temporary file left


def test_import_profile_on_a_full_disk(tmp_path, full_disk, capsys):
    out = tmp_path / "out"
    out.mkdir()
    full_disk.fill()
    assert import_profile.main(["--format", "ofa-lut", str(LUT), "--space", "ofa-mbv3-w1.2", "--device", "note10",
                                "--out", str(out / "note10.jsonl")]) == 2
    assert re.search("error: DiskFullError: " + disk_full_message(out / "note10.jsonl"), capsys.readouterr().err)
    full_disk.fill()
    assert import_profile.main(["--format", "ofa-lut", "--export", str(BLOCKS), "--out", str(out / "lut.yaml")]) == 2
    assert re.search("error: DiskFullError: " + disk_full_message(out / "lut.yaml"), capsys.readouterr().err)
    assert list(out.iterdir()) == []


def test_fit_predictor_on_a_full_disk(tmp_path, full_disk, capsys):
    argv, out = fit(tmp_path, copy_with(TIMED, tmp_path / "p.jsonl"))
    full_disk.fill()
    assert fit_predictor.main(argv) == 2
    assert re.search("error: DiskFullError: " + disk_full_message(out), capsys.readouterr().err)
    assert list(out.parent.iterdir()) == []


def test_profile_device_on_a_full_disk_keeps_a_resumable_profile(tmp_path, full_disk, capsys):
    out = tmp_path / "fpga.jsonl"
    argv = ["--space", "mbv3-small", "--backend", "fpga-analytical", "--num-archs", "3", "--out", str(out),
            "--no-progress"]
    full_disk.fill(room=1)  # the header fits; the first record does not
    assert profile_device.main(argv) == 2
    assert re.search("error: DiskFullError: " + disk_full_message(out), capsys.readouterr().err)
    assert out.read_text().count("\n") == 1 and out.read_text().endswith("\n")  # the header, no partial record
    full_disk.monkeypatch.undo()  # space freed: the same command resumes
    assert profile_device.main(argv) == 0 and len(read_profile(out)) == 3
