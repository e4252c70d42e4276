"""Data loading: canonical space, splits, CSV/PNG and DICOM sources (generated images), and the real data files."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from medaudit.core.errors import AuditInputError
from medaudit.core.pixels import grey_from_pm1, pm1_from_grey
from medaudit.data.audit_data import SOURCE_FORMATS, load_data, make_splits, select, to_canonical
from medaudit.data.csv_folder import make_test_split
from medaudit.data.sources import SOURCE_SPLIT_RULE, read_npz
from medaudit.scenario.threat_model import DataSection
from tests.conftest import synthetic_images, write_dicom, write_synthetic_npz


def test_medmnist_npz_in_canonical_space(pneumonia_path):
    data = load_data(pneumonia_path, DataSection(test_limit=100), image_size=16, channels=1, seed=0)
    assert data.development.x.shape == (4708 + 524, 1, 16, 16) and data.development.x.dtype == np.float32
    assert -1.0 <= data.development.x.min() < -0.9 and 0.9 < data.development.x.max() <= 1.0
    assert len(data.test) == 100 and abs(data.test.y.mean() - 390 / 624) < 0.02  # stratified
    assert not data.patient_level and "image-level" in data.notes[0] and data.split_rule.startswith(SOURCE_SPLIT_RULE)


def test_npz_patient_ids_make_patient_level_splits(chest128_path):
    data = load_data(chest128_path, DataSection(), image_size=16, channels=1, seed=0)
    assert data.patient_level and not any("patient" in n for n in data.notes)
    assert len(data.development) == 4105 + 581 and len(data.test) == 1170
    groups = data.development.groups
    assert len(np.unique(groups)) == 1984 + 277 and len(np.unique(data.test.groups)) == 528
    assert not set(groups[data.splits["d1"]]) & set(groups[data.splits["d2"]])
    assert not set(groups) & set(data.test.groups)  # the file's own split is patient-level


def test_generated_npz_with_patient_ids(tmp_path):
    path = write_synthetic_npz(tmp_path / "ids.npz", patient_ids=True)
    data = load_data(path, DataSection(), image_size=16, channels=1, seed=0)
    assert data.patient_level and data.notes == ()
    np.testing.assert_array_equal(data.development.groups[:4], ["train-p0", "train-p0", "train-p1", "train-p1"])
    assert set(data.test.groups) == {f"test-p{i}" for i in range(16)}
    groups = data.development.groups
    assert not set(groups[data.splits["d1"]]) & set(groups[data.splits["d2"]])


@pytest.mark.parametrize("patient_ids", [True, False])
def test_the_selection_names_the_audits_images_without_converting_them(tmp_path, patient_ids):
    """Labels, ids, splits and hash re-read from the file alone are those of the loaded audit data (what a
    reader re-scoring committed per-image scores needs), and the test indices pick the very images loaded."""
    path = write_synthetic_npz(tmp_path / "s.npz", counts=(40, 8, 30), patient_ids=patient_ids)
    section = DataSection(positive_labels=[1], negative_labels=[0], test_limit=12)
    data = load_data(path, section, image_size=16, channels=1, seed=5)
    loaded = read_npz(path)
    chosen = select(loaded, section, seed=5, where=str(path))
    np.testing.assert_array_equal(chosen.test_y, data.test.y)
    np.testing.assert_array_equal(chosen.test_groups, data.test.groups)
    np.testing.assert_array_equal(pm1_from_grey(loaded.test.images[chosen.test][:, None]), data.test.x)
    assert chosen.split_ids_sha256 == data.split_ids_sha256 and chosen.test_selection == data.test_selection
    assert len(chosen.test) == 12 and len(chosen.development) == len(data.development)
    assert chosen.splits.keys() == data.splits.keys()
    assert all(np.array_equal(chosen.splits[k], data.splits[k]) for k in data.splits)


def test_splits_are_disjoint_nested_and_seeded(pneumonia_path):
    data = load_data(pneumonia_path, DataSection(), image_size=8, channels=1, seed=3)
    s = data.splits
    assert not set(s["d1"]) & set(s["d2"]) and len(s["d1"]) + len(s["d2"]) == len(data.development)
    assert set(s["d1/10"]) <= set(s["d1"]) and len(s["d1/10"]) == len(s["d1"]) // 10
    assert set(s["d2/2"]) <= set(s["d2"]) and len(s["d2/2"]) == len(s["d2"]) // 2
    again = load_data(pneumonia_path, DataSection(), image_size=8, channels=1, seed=3)
    assert again.split_ids_sha256 == data.split_ids_sha256
    other = load_data(pneumonia_path, DataSection(), image_size=8, channels=1, seed=4)
    assert other.split_ids_sha256 != data.split_ids_sha256


def test_patient_level_splits_keep_patients_together():
    groups = np.repeat(np.arange(50).astype(str), 3)
    splits = make_splits(groups, seed=0)
    assert not set(groups[splits["d1"]]) & set(groups[splits["d2"]])
    assert len(splits["d1"]) % 3 == 0 and len(splits["full"]) == 150


def test_to_canonical_maps_grey_levels_and_resizes():
    x = to_canonical(np.array([[[0, 255], [255, 0]]], dtype=np.uint8), 2)
    np.testing.assert_array_equal(x[0, 0], [[-1, 1], [1, -1]])
    assert to_canonical(np.zeros((2, 28, 28, 3), np.uint8), 16).shape == (2, 3, 16, 16)
    with pytest.raises(AuditInputError, match="uint8"):
        to_canonical(np.zeros((2, 8, 8), np.float32), 8)


def test_retina_grades_binarised_to_referable_dr(retina_path):
    path = retina_path
    data = load_data(path, DataSection(positive_labels=(2, 3, 4)), image_size=16, channels=3, seed=0)
    assert data.development.y.sum() == 466 + 54 and data.test.y.sum() == 180
    with pytest.raises(AuditInputError, match="needs `data.positive_labels`"):
        load_data(path, DataSection(), image_size=16, channels=3, seed=0)
    with pytest.raises(AuditInputError, match="colour images, but the target takes 1 channel"):
        load_data(path, DataSection(positive_labels=(2,)), image_size=16, channels=1, seed=0)


def test_one_class_test_split_is_refused(pneumonia_path):
    with pytest.raises(AuditInputError, match="test split has one class only"):
        load_data(pneumonia_path, DataSection(positive_labels=(7,)), image_size=8, channels=1, seed=0)


def _write_folder(tmp_path, *, dicom: bool, split_column: bool = True, n_dev: int = 24, n_test: int = 8):
    images, labels = synthetic_images(n_dev + n_test, 28)
    rows = []
    for i, (im, label) in enumerate(zip(images, labels)):
        name = f"img{i}.{'dcm' if dicom else 'png'}"
        if dicom:
            write_dicom(tmp_path / name, im)
        else:
            Image.fromarray(im).save(tmp_path / name)
        rows.append(
            {
                "path": name,
                "label": int(label),
                "patient": f"p{i // 2}",
                **({"split": "test" if i >= n_dev else "train"} if split_column else {}),
            }
        )
    csv_path = tmp_path / "data.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return csv_path, images


@pytest.mark.parametrize("dicom", [False, True], ids=["png", "dicom"])
def test_csv_folder_with_patient_column(tmp_path, dicom):
    csv_path, images = _write_folder(tmp_path, dicom=dicom)
    data = load_data(csv_path, DataSection(patient_column="patient"), image_size=28, channels=1, seed=0)
    assert data.patient_level and len(data.development) == 24 and len(data.test) == 8
    groups = data.development.groups
    assert not set(groups[data.splits["d1"]]) & set(groups[data.splits["d2"]])
    if not dicom:  # PNG round trip is exact
        np.testing.assert_allclose(data.development.x[0, 0], images[0] / 127.5 - 1, atol=1e-6)
    else:  # DICOM is windowed to its own full range
        x = data.development.x[0, 0]
        assert x.min() == -1.0 and x.max() == 1.0
        assert np.corrcoef(x.ravel(), images[0].ravel())[0, 1] > 0.999


def test_csv_errors_name_the_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("file,label\na.png,1\n")
    with pytest.raises(AuditInputError, match="CSV needs a `path` column"):
        load_data(path, DataSection(), image_size=8, channels=1, seed=0)
    with pytest.raises(AuditInputError, match="data file not found"):
        load_data(tmp_path / "nope.npz", DataSection(), image_size=8, channels=1, seed=0)


def test_made_test_split_by_hand():
    # patients a..j; a-d have label 1, e-j label 0; patient a has one 0 image but mostly 1s
    groups = np.array(list("aaabcdefghij"))
    strata = np.array(["1", "1", "0", "1", "1", "1", "0", "0", "0", "0", "0", "0"])
    held = make_test_split(groups, strata, seed=0, fraction=0.25)
    assert len(set(groups[held]) & set("abcd")) == 1  # round(4 * 0.25)
    assert len(set(groups[held]) & set("efghij")) == 2  # round(6 * 0.25) = round(1.5) = 2 (banker's)
    assert not set(groups[held]) & set(groups[~held])  # whole patients
    np.testing.assert_array_equal(make_test_split(groups, strata, seed=0, fraction=0.25), held)
    assert not np.array_equal(make_test_split(groups, strata, seed=1, fraction=0.25), held) or not np.array_equal(
        make_test_split(groups, strata, seed=2, fraction=0.25), held
    )
    lone = make_test_split(np.array(["x", "y"]), np.array(["0", "1"]), seed=0, fraction=0.25)
    assert not lone.any()  # a stratum of one patient stays in development


def test_csv_without_split_column_gets_a_stated_patient_level_split(tmp_path):
    csv_path, _ = _write_folder(tmp_path, dicom=False, split_column=False, n_dev=40, n_test=0)
    data = load_data(csv_path, DataSection(patient_column="patient"), image_size=28, channels=1, seed=0)
    assert data.patient_level and len(data.test) == 8 and len(data.development) == 32  # 20 patients, 4 held out
    assert not set(data.development.groups) & set(data.test.groups)
    assert data.split_rule.startswith("no `split` column in data.csv: medaudit held out 20% of each label's patients")
    assert (
        "seed 0" in data.split_rule
        and "by patient column `patient`" in data.split_rule
        and any(data.split_rule.startswith(note) for note in data.notes)
    )
    again = load_data(csv_path, DataSection(patient_column="patient"), image_size=28, channels=1, seed=0)
    assert again.split_ids_sha256 == data.split_ids_sha256


def test_grey_levels_and_the_canonical_range_convert_by_one_rule():
    # 0 and 255 are the range's ends; 127.5 grey levels per unit, so mid-grey 128 sits just above 0
    assert pm1_from_grey(np.array([0, 255, 128], np.uint8)).tolist() == pytest.approx(
        [-1.0, 1.0, 0.5 / 127.5], abs=1e-6
    )  # float32
    # back: nearest level (0 -> 127.5 rounds to the even 128), clipped outside [-1, 1]
    assert grey_from_pm1(np.array([-1.0, 1.0, 0.0, -2.0, 3.0, 1 / 127.5])).tolist() == [0, 255, 128, 0, 255, 128]
    levels = np.arange(256, dtype=np.uint8)
    assert np.array_equal(grey_from_pm1(pm1_from_grey(levels)), levels)  # every level survives the round trip


# one generated source per entry of SOURCE_FORMATS: a new format enrols here, or this test fails
SOURCE_WRITERS = {
    ".npz": lambda folder: (write_synthetic_npz(folder / "s.npz", counts=(24, 8, 8), patient_ids=True), "patient_ids"),
    ".csv": lambda folder: (_write_folder(folder, dicom=False)[0], "patient"),
}


def test_every_source_format_has_a_generated_source():
    assert set(SOURCE_WRITERS) == set(SOURCE_FORMATS), "add a writer for the new format to SOURCE_WRITERS"


@pytest.mark.parametrize("suffix", sorted(SOURCE_FORMATS))
def test_every_source_format_loads_into_the_canonical_space(tmp_path, suffix):
    path, patient_column = SOURCE_WRITERS[suffix](tmp_path)
    section = DataSection(patient_column=patient_column) if suffix == ".csv" else DataSection()
    data = load_data(path, section, image_size=16, channels=1, seed=0)
    assert data.development.x.shape[1:] == (1, 16, 16) and data.development.x.dtype == np.float32
    assert -1.0 <= data.development.x.min() and data.development.x.max() <= 1.0
    assert data.patient_level and len(data.test) == 8
