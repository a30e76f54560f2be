"""UCI loaders: known counts from shared/data/README.md section 2, malformed files, checksums, CSV loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modgraph.data import KNOWN_SHA256, UCIDataset, load_csv, load_uci, resolve_data_root, verify_file
from modgraph.errors import DataError

# name -> (rows, features, class counts by original label); from shared/data/README.md section 2.
KNOWN = {
    "balance": (625, 4, {"B": 49, "L": 288, "R": 288}),
    "ecoli": (336, 7, {"cp": 143, "im": 77, "imL": 2, "imS": 2, "imU": 35, "om": 20, "omL": 5, "pp": 52}),
    "glass": (214, 9, {"1": 70, "2": 76, "3": 17, "5": 13, "6": 9, "7": 29}),
    "liver": (345, 6, {"selector=1": 145, "selector=2": 200}),
    "sonar": (208, 60, {"M": 111, "R": 97}),
    "vehicle": (846, 18, {"bus": 218, "opel": 212, "saab": 217, "van": 199}),
}


def _edit_line(path: Path, lineno: int, new: str | None) -> None:
    """Replace 1-based line ``lineno`` of ``path`` by ``new`` (``None`` deletes the line)."""
    lines = path.read_text().splitlines(keepends=True)
    if new is None:
        del lines[lineno - 1]
    else:
        lines[lineno - 1] = new + "\n"
    path.write_text("".join(lines))


# ---------------------------------------------------------------------------------------------- known data


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_counts(data_root: Path, name: str) -> None:
    rows, features, counts = KNOWN[name]
    ds = load_uci(name, data_root)
    assert isinstance(ds, UCIDataset)
    assert ds.X.shape == (rows, features) and ds.X.dtype == np.float32
    assert ds.y.shape == (rows,) and ds.y.dtype == np.int64
    assert set(np.unique(ds.y)) == set(range(len(counts)))  # every class 0..C-1 present
    assert ds.class_counts() == counts
    assert len(ds.feature_names) == features and ds.num_classes == len(counts)
    assert np.isfinite(ds.X).all()
    assert all(p.is_file() for p in ds.source_files)


def test_name_is_case_insensitive(data_root: Path) -> None:
    assert load_uci(" Glass ", data_root).X.shape == (214, 9)


def test_balance_class_is_first_column(data_root: Path) -> None:
    # The documented rule: compare left weight * distance with right weight * distance.
    ds = load_uci("balance", data_root)
    lw, ld, rw, rd = ds.X.T
    torque = lw * ld - rw * rd
    expected = np.where(torque > 0, "L", np.where(torque < 0, "R", "B"))
    assert (np.array(ds.class_names)[ds.y] == expected).all()


def test_glass_drops_the_id_column(data_root: Path) -> None:
    ds = load_uci("glass", data_root)
    assert ds.feature_names[0] == "RI" and "Id" not in ds.feature_names
    assert 1.5 < ds.X[:, 0].min() and ds.X[:, 0].max() < 1.54  # refractive index, not 1..214


def test_ecoli_drops_the_sequence_name(data_root: Path) -> None:
    ds = load_uci("ecoli", data_root)
    assert ds.feature_names == ("mcg", "gvh", "lip", "chg", "aac", "alm1", "alm2")
    assert ds.X.min() >= 0.0 and ds.X.max() <= 1.0


def test_vehicle_reads_nine_files_in_order(data_root: Path) -> None:
    ds = load_uci("vehicle", data_root)
    assert [p.name for p in ds.source_files] == [f"xa{c}.dat" for c in "abcdefghi"]
    assert ds.class_names[ds.y[0]] == "van"  # xaa.dat line 1 ends in "van " (trailing space)
    assert ds.X[0, :3].tolist() == [95, 48, 83]


def test_liver_label_conventions(data_root: Path) -> None:
    selector = load_uci("liver", data_root)  # default
    drinks = load_uci("liver", data_root, liver_label="drinks")
    assert selector.feature_names[-1] == "drinks" and selector.class_names == ("selector=1", "selector=2")
    assert drinks.X.shape == (345, 5) and "drinks" not in drinks.feature_names
    assert drinks.class_counts() == {"drinks<3": 169, "drinks>=3": 176}
    np.testing.assert_array_equal(drinks.y, (selector.X[:, 5] >= 3).astype(np.int64))
    np.testing.assert_array_equal(drinks.X, selector.X[:, :5])


def test_unknown_name_and_liver_label(data_root: Path) -> None:
    with pytest.raises(DataError, match=r"unknown UCI data set 'iris'; expected one of balance, ecoli"):
        load_uci("iris", data_root)
    with pytest.raises(DataError, match=r"liver_label: expected one of selector, drinks, got 'sick'"):
        load_uci("liver", data_root, liver_label="sick")


def test_root_may_be_the_uci_folder_itself(data_root: Path) -> None:
    assert load_uci("sonar", data_root / "uci").X.shape == (208, 60)


def test_data_root_from_environment(data_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODGRAPH_DATA", str(data_root))
    assert load_uci("glass").X.shape == (214, 9)
    assert resolve_data_root(tmp_path) == tmp_path  # the flag wins over the environment
    monkeypatch.delenv("MODGRAPH_DATA")
    monkeypatch.chdir(tmp_path)
    assert resolve_data_root(None) == tmp_path / "data"


def test_missing_file_names_the_paths_and_how_to_set_the_root(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_uci("glass", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "uci" / "glass" / "glass.data") in message
    assert "MODGRAPH_DATA" in message and "--data-root" in message


# ------------------------------------------------------------------------------------------ malformed files


@pytest.mark.parametrize(
    "folder, name, file, lineno, new, pattern",
    [
        ("glass", "glass", "glass.data", 5, "5,1.51742,13.27,3.62,1.24,73.08,0.55,8.07,0.00,0.00",
         r"glass\.data, line 5: expected 11 ','-separated fields, got 10"),
        ("balance-scale", "balance", "balance-scale.data", 3, "R,1,?,1,3",
         r"balance-scale\.data, line 3, column 'left_distance': missing value '\?'"),
        ("ecoli", "ecoli", "ecoli.data", 10, "ARAC_ECOLI  0.42  abc  0.48  0.50  0.44  0.34  0.45   cp",
         r"ecoli\.data, line 10, column 'gvh': expected a number, got 'abc'"),
        ("sonar", "sonar", "sonar.all-data", 7, ",".join(["0.1"] * 60 + ["X"]),
         r"sonar\.all-data, line 7: unknown class label 'X'; expected one of M, R"),
        ("vehicle", "vehicle", "xac.dat", 94, "85 36 66 123 55 5 120 56 17",
         r"xac\.dat, line 94: expected 19 whitespace-separated fields, got 9"),
        ("liver-disorders", "liver", "bupa.data", 2, "85,64,59,32,23,nan,2",
         r"bupa\.data, line 2, column 'drinks': expected a finite number, got 'nan'"),
        ("glass", "glass", "glass.data", 5, "5,1.51742,13.27,3.62,1.24,73.08,0.55,8.07,0.00,0.00,1,1",
         r"glass\.data, line 5: expected 11 ','-separated fields, got 12"),
    ],
)  # fmt: skip
def test_malformed_line_names_file_and_line(
    copy_data, folder: str, name: str, file: str, lineno: int, new: str, pattern: str
) -> None:
    root = copy_data(f"uci/{folder}")
    _edit_line(root / "uci" / folder / file, lineno, new)
    with pytest.raises(DataError, match=pattern):
        load_uci(name, root)
    with pytest.raises(DataError, match=pattern):  # a parse error is reported even without verification
        load_uci(name, root, verify=False)


def test_empty_file(copy_data) -> None:
    root = copy_data("uci/glass")
    (root / "uci" / "glass" / "glass.data").write_text("\n\n")
    with pytest.raises(DataError, match=r"glass\.data is empty"):
        load_uci("glass", root)


def test_checksum_mismatch_names_the_file(copy_data) -> None:
    root = copy_data("uci/glass")
    path = root / "uci" / "glass" / "glass.data"
    _edit_line(path, 1, "1,1.52101,13.64,4.49,1.10,71.78,0.06,8.75,0.00,0.01,1")  # Fe 0.00 -> 0.01
    with pytest.raises(DataError, match=r"glass\.data is corrupted or edited: sha256 expected dd67373f"):
        load_uci("glass", root)
    ds = load_uci("glass", root, verify=False)  # parses fine: only the checksum differs
    assert ds.X[0, -1] == np.float32(0.01)


def test_verify_file_truncated_and_corrupted(data_root: Path, tmp_path: Path) -> None:
    original = (data_root / "uci" / "sonar" / "sonar.all-data").read_bytes()
    path = tmp_path / "sonar.all-data"
    path.write_bytes(original[:-100])
    with pytest.raises(DataError, match=r"sonar\.all-data is truncated: .* got 87676 bytes"):
        verify_file(path, "uci/sonar/sonar.all-data")
    path.write_bytes(original.replace(b"0.0200", b"0.0201", 1))
    with pytest.raises(DataError, match=r"sonar\.all-data is corrupted or edited"):
        verify_file(path, "uci/sonar/sonar.all-data")
    with pytest.raises(DataError, match=r"no known checksum for 'uci/iris/iris\.data'"):
        verify_file(path, "uci/iris/iris.data")


def test_known_digests_match_the_shared_sha256sums(data_root: Path) -> None:
    listed = {}
    for line in (data_root / "SHA256SUMS").read_text().splitlines():
        digest, relpath = line.split()
        listed[relpath] = digest
    assert KNOWN_SHA256 == listed
    for relpath in listed:
        verify_file(data_root / relpath, relpath)


# ----------------------------------------------------------------------------------------------- load_csv


def test_load_csv_maps_labels_in_sorted_order(tmp_path: Path) -> None:
    path = tmp_path / "toy.csv"
    path.write_text("id,a,b,species\n1,0.5,1,virginica\n2,1.5,2,setosa\n3,2.5,3,versicolor\n4,3.5,4,setosa\n")
    ds = load_csv(path, label_column="species", drop_columns=["id"])
    assert ds.name == "toy" and ds.feature_names == ("a", "b")
    assert ds.class_names == ("setosa", "versicolor", "virginica")
    assert ds.y.tolist() == [2, 0, 1, 0]
    np.testing.assert_array_equal(ds.X, np.array([[0.5, 1], [1.5, 2], [2.5, 3], [3.5, 4]], dtype=np.float32))


def test_load_csv_sorts_numeric_labels_numerically(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("x;label\n1;10\n2;9\n3;2\n")
    ds = load_csv(path, "label", delimiter=";")
    assert ds.class_names == ("2", "9", "10") and ds.y.tolist() == [2, 1, 0]


def test_load_csv_agrees_with_load_uci(data_root: Path, tmp_path: Path) -> None:
    glass = load_uci("glass", data_root)
    path = tmp_path / "glass.csv"
    lines = [",".join(["Id", *glass.feature_names, "type"])]
    for raw in (data_root / "uci" / "glass" / "glass.data").read_text().splitlines():
        lines.append(raw)
    path.write_text("\n".join(lines) + "\n")
    ds = load_csv(path, "type", drop_columns=["Id"])
    np.testing.assert_array_equal(ds.X, glass.X)
    np.testing.assert_array_equal(ds.y, glass.y)
    assert ds.class_names == glass.class_names


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("a,b,label\n1,2,x\n3,4\n", r"t\.csv, line 3: expected 3 ','-separated fields .* got 2"),
        ("a,b,label\n1,2,x\n3,?,y\n", r"t\.csv, line 3, column 'b': missing value '\?'"),
        ("a,b,label\n1,2,x\n\n3,four,y\n", r"t\.csv, line 4, column 'b': expected a number, got 'four'"),
        ("a,b,label\n1,2,\n", r"t\.csv, line 2: missing label '' in column 'label'"),
        ("a,b,label\n1,2,x\n3,4,?\n", r"t\.csv, line 3: missing label '\?' in column 'label'"),
        ("a,b,label\n1,2,1\n3,4,NaN\n", r"t\.csv, line 3: missing label 'NaN' in column 'label'"),
        ("a,b,label\n1,1_000,x\n3,4,y\n", r"t\.csv, line 2, column 'b': expected a number, got '1_000'"),
        ("a,b,label\n1,2,x\n3,4,y,5\n", r"t\.csv, line 3: expected 3 ','-separated fields .* got 4"),
        ("a,b,label\n1,,x\n3,4,y\n", r"t\.csv, line 2, column 'b': missing value ''"),
        ("a,b,class\n1,2,x\n", r"t\.csv, line 1: no column named 'label'; the header has \['a', 'b', 'c"),
        ("a,a,label\n1,2,x\n", r"t\.csv, line 1: duplicated column name\(s\) \['a'\]"),
        ("a,b,label\n", r"t\.csv: has a header but no data rows"),
        ("", r"t\.csv is empty"),
    ],
)
def test_load_csv_errors(tmp_path: Path, text: str, pattern: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=pattern):
        load_csv(path, "label")


def test_load_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"CSV file not found: .*nope\.csv"):
        load_csv(tmp_path / "nope.csv", "label")


# ------------------------------------------------------------------------------- values and layouts of real files


@pytest.mark.parametrize("value", ["1e39", "-1e39", "3.5e38"])
def test_load_csv_value_beyond_float32_is_named(tmp_path: Path, value: str) -> None:
    """Finite in float64 but inf in the float32 features: an error naming the field, not a silent inf."""
    path = tmp_path / "big.csv"
    path.write_text(f"a,b,label\n{value},2,x\n3,4,y\n")
    with pytest.raises(DataError, match=rf"big\.csv, line 2, column 'a': {value} overflows float32"):
        load_csv(path, "label")


def test_load_csv_keeps_values_up_to_float32_max(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n3.4028235e38,-3.4028235e38,x\n1e-50,4,y\n")  # the largest float32; underflow is fine
    ds = load_csv(path, "label")
    assert np.isfinite(ds.X).all() and ds.X[0, 0] == np.finfo(np.float32).max and ds.X[1, 0] == 0.0


def test_uci_value_beyond_float32_is_named(copy_data) -> None:
    root = copy_data("uci/glass")
    _edit_line(root / "uci" / "glass" / "glass.data", 5, "5,1e39,13.27,3.62,1.24,73.08,0.55,8.07,0.00,0.00,1")
    for verify in (True, False):
        with pytest.raises(DataError, match=r"glass\.data, line 5, column 'RI': 1e39 overflows float32"):
            load_uci("glass", root, verify=verify)


def test_load_csv_reads_a_quoted_field_across_lines(tmp_path: Path) -> None:
    """A quoted field may hold a line break (csv); line numbers after it stay those of the file."""
    path = tmp_path / "t.csv"
    path.write_text('a,b,label\n1,"2\n",x\n3,4,"y"\n5,6,x\n')
    ds = load_csv(path, "label")
    assert ds.X.tolist() == [[1, 2], [3, 4], [5, 6]] and ds.y.tolist() == [0, 1, 0]
    path.write_text('a,b,label\n1,"2\n",x\n3,four,y\n')
    with pytest.raises(DataError, match=r"t\.csv, line 4, column 'b': expected a number, got 'four'"):
        load_csv(path, "label")
    path.write_text('a,b,label\n1,2,x\n3,"4,y\n5,6,x\n')  # an unclosed quote swallows the rest of the file
    with pytest.raises(DataError, match=r"t\.csv, line 3: expected 3 ','-separated fields .* got 2 \(a quoted field "
                                        r"runs from line 3 to line 4\)"):
        load_csv(path, "label")


def test_load_csv_reads_a_utf8_bom(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a byte-order mark; it is not part of the first column's name."""
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufefflabel,a,b\r\nx,1,2\r\ny,3,4\r\n".encode())
    ds = load_csv(path, "label")
    assert ds.feature_names == ("a", "b") and ds.class_names == ("x", "y") and ds.X.tolist() == [[1, 2], [3, 4]]


def test_load_csv_needs_two_classes_and_a_feature(tmp_path: Path) -> None:
    path = tmp_path / "oneclass.csv"
    path.write_text("a,b,label\n1,2,x\n3,4,x\n5,6,x\n")
    with pytest.raises(DataError, match=r"oneclass\.csv: column 'label' has a single class \(x\); classification "
                                        "needs two"):
        load_csv(path, "label")
    path = tmp_path / "onlylabel.csv"
    path.write_text("label\nx\ny\n")
    with pytest.raises(DataError, match=r"onlylabel\.csv, line 1: no feature columns besides 'label'"):
        load_csv(path, "label")
    path.write_text("id,label\n1,x\n2,y\n")
    with pytest.raises(DataError, match=r"no feature columns besides 'label' and the dropped \['id'\]"):
        load_csv(path, "label", drop_columns=["id"])


# ----------------------------------------------------------------------- class order, column names, file layout

# name -> (folder, files, separator (None: whitespace), index of the label field); from the files' .names documents
RAW_LAYOUT = {
    "balance": ("balance-scale", ["balance-scale.data"], ",", 0),
    "ecoli": ("ecoli", ["ecoli.data"], None, -1),
    "glass": ("glass", ["glass.data"], ",", -1),
    "sonar": ("sonar", ["sonar.all-data"], ",", -1),
    "vehicle": ("vehicle", [f"xa{c}.dat" for c in "abcdefghi"], None, -1),
}


@pytest.mark.parametrize("name", sorted(RAW_LAYOUT))
def test_class_names_are_the_sorted_labels_of_the_file(data_root: Path, name: str) -> None:
    """class_names[k] is the k-th label in sorted order, and y maps each row back to its label as written."""
    folder, files, sep, label_index = RAW_LAYOUT[name]
    labels = []
    for file in files:
        for line in (data_root / "uci" / folder / file).read_text().splitlines():
            if line.strip():
                fields = line.split(sep) if sep else line.split()
                labels.append(fields[label_index].strip())
    ds = load_uci(name, data_root)
    assert ds.class_names == tuple(sorted(set(labels)))  # glass's labels are single digits: same as numeric order
    assert (np.array(ds.class_names)[ds.y] == np.array(labels)).all()


def test_glass_feature_names_follow_glass_names(data_root: Path) -> None:
    # glass.names, "Attribute Information": Id, RI, Na, Mg, Al, Si, K, Ca, Ba, Fe, type. glass.data line 1 reads
    # 1,1.52101,13.64,4.49,1.10,71.78,0.06,8.75,0.00,0.00,1
    ds = load_uci("glass", data_root)
    first = dict(zip(ds.feature_names, ds.X[0].tolist(), strict=True))
    expected = {"RI": 1.52101, "Na": 13.64, "Mg": 4.49, "Al": 1.10, "Si": 71.78, "K": 0.06, "Ca": 8.75, "Ba": 0.0,
                "Fe": 0.0}
    assert first == pytest.approx(expected)


def test_uci_fields_may_have_spaces_around_the_separator(copy_data, data_root: Path) -> None:
    root = copy_data("uci/glass")
    path = root / "uci" / "glass" / "glass.data"
    path.write_text("".join(" , ".join(line.split(",")) + "\n" for line in path.read_text().splitlines()))
    ds, original = load_uci("glass", root, verify=False), load_uci("glass", data_root)
    np.testing.assert_array_equal(ds.X, original.X)
    np.testing.assert_array_equal(ds.y, original.y)


def test_uci_prefers_the_uci_subfolder(copy_data) -> None:
    """Both <root>/uci/glass/ and <root>/glass/ hold glass.data: the documented layout <root>/uci/... wins."""
    root = copy_data("uci/glass")
    (root / "glass").mkdir()
    (root / "glass" / "glass.data").write_text("1,1.5,13,4,1,71,0,8,0,0,1\n")  # a different file
    ds = load_uci("glass", root)  # verify=True: the original digest
    assert ds.source_files == (root / "uci" / "glass" / "glass.data",) and ds.num_samples == 214


def test_class_counts_include_an_absent_class() -> None:
    ds = UCIDataset("t", np.zeros((3, 1), np.float32), np.array([0, 0, 1]), ("a",), ("x", "y", "z"), ())
    assert ds.class_counts() == {"x": 2, "y": 1, "z": 0}


# ---------------------------------------------------------------------------------------- load_csv details


@pytest.mark.parametrize("value, kept", [("3.4028235677973366e+38", False), ("3.4028235677973362e+38", True)])
def test_load_csv_float32_overflow_boundary(tmp_path: Path, value: str, kept: bool) -> None:
    """2**128 - 2**103 (halfway between float32's largest value and 2**128) rounds to inf in float32; the float64
    just below it rounds to float32's largest value."""
    assert (np.float64(value) == 2.0**128 - 2.0**103) is not kept
    path = tmp_path / "t.csv"
    path.write_text(f"a,label\n{value},x\n1,y\n")
    if kept:
        assert load_csv(path, "label").X[0, 0] == np.finfo(np.float32).max
    else:
        with pytest.raises(DataError, match=r"t\.csv, line 2, column 'a': .* overflows float32"):
            load_csv(path, "label")


def test_load_csv_skips_whitespace_only_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,x\n   \n\t\n3,4,y\n5,?,y\n")
    with pytest.raises(DataError, match=r"t\.csv, line 6, column 'b': missing value"):  # line numbers of the file
        load_csv(path, "label")
    path.write_text("a,b,label\n1,2,x\n   \n3,4,y\n")
    assert load_csv(path, "label").X.tolist() == [[1, 2], [3, 4]]


def test_load_csv_strips_spaces_around_names_labels_and_values(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a, b, label\n1, 2, x\n3, 4,x\n5, 6, y\n")
    ds = load_csv(path, "label")
    assert ds.feature_names == ("a", "b") and ds.class_names == ("x", "y") and ds.y.tolist() == [0, 0, 1]
    path.write_text("a, b, label\n1, 2, x\n3, ?, y\n")
    with pytest.raises(DataError, match=r"t\.csv, line 3, column 'b': missing value '\?'"):
        load_csv(path, "label")


def test_load_csv_short_row_message_does_not_mention_quotes(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,x\n3,4\n")
    with pytest.raises(DataError, match=r"t\.csv, line 3: expected 3 ") as info:
        load_csv(path, "label")
    assert "quoted field" not in str(info.value)


def test_load_csv_breaks_ties_between_equal_numeric_labels_by_text(tmp_path: Path) -> None:
    """Labels that are the same number written differently stay distinct classes, in a fixed order: a set's order
    of strings changes with PYTHONHASHSEED, so the tie must be broken by the text, not left to the set."""
    ties = ["1", "1.0", "01", "1e0", "+1", "1.00", "001", "1."]
    path = tmp_path / "t.csv"
    path.write_text("a,label\n" + "".join(f"{i},{t}\n" for i, t in enumerate(ties + ["0.5", "2"])))
    ds = load_csv(path, "label")
    assert ds.class_names == ("0.5", *sorted(ties), "2")


def test_load_csv_name_and_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "t.csv").write_text("a,label\n1,x\n2,y\n")
    assert load_csv("~/t.csv", "label").name == "t"
    assert load_csv("~/t.csv", "label", name="toy").name == "toy"


def test_load_csv_malformed_csv_is_a_data_error(tmp_path: Path) -> None:
    import csv

    path = tmp_path / "t.csv"
    path.write_text("a,label\n1,x\n" + "2" * (csv.field_size_limit() + 1) + ",y\n")  # a field over csv's limit
    with pytest.raises(DataError, match=r"t\.csv, line 3: malformed CSV"):
        load_csv(path, "label")


def test_label_order_is_numeric_or_textual_whatever_the_set_order() -> None:
    from modgraph.data.uci import _label_sort_key

    assert _label_sort_key({"10", "9", "2.5"}) == ["2.5", "9", "10"]
    # "nan" parses as a float that compares with nothing: the order would follow the set's iteration order
    for order in (["nan", "1", "2", "10"], ["10", "nan", "2", "1"], ["2", "1", "10", "nan"]):
        assert _label_sort_key(order) == ["1", "10", "2", "nan"]


def test_load_csv_drop_columns_may_be_one_name(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,i,d,label\n7,1,2,x\n8,3,4,y\n")  # "id" as characters would drop the columns i and d
    ds = load_csv(path, "label", drop_columns="id")
    assert ds.feature_names == ("i", "d") and ds.X.tolist() == [[1, 2], [3, 4]]


def test_a_hand_built_data_set_that_does_not_fit_together_is_named() -> None:
    """X with more rows than y trained on the first rows silently; a label past the class names, a float label, a
    1-D X or a NaN feature failed deep inside the benchmark (a zip, a cast, an index, 'the training diverged')."""
    X, y = np.random.default_rng(0).random((6, 2)).astype(np.float32), np.array([0, 1] * 3)
    fields = dict(name="t", X=X, y=y, feature_names=("a", "b"), class_names=("p", "q"), source_files=())
    cases = [
        ({"y": y[:4]}, r"X has 6 rows but y has 4 labels; one label per row"),
        ({"y": y * 2}, r"labels must be in \[0, 2\), got 2 at row 1 \(3 out of range\)"),
        ({"y": y.astype(float)}, r"y must be an integer array \[n\] of class indices 0\.\.C-1, got shape \(6,\) of "
                                 r"float64"),
        ({"X": X[:, 0]}, r"X must be a numeric array \[n, d\], got shape \(6,\) of float32"),
        ({"feature_names": ("a",)}, r"1 feature names for 2 columns of X"),
        ({"X": np.where(np.arange(12).reshape(6, 2) == 3, np.nan, X)}, r"1 non-finite values \(NaN\); the first at "
                                                                         r"row 1, column 1; impute or drop them first"),
    ]
    for change, message in cases:
        with pytest.raises(DataError, match=rf"^UCIDataset 't': {message}$"):
            UCIDataset(**{**fields, **change})


def test_load_csv_takes_none_for_no_dropped_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,x\n3,4,y\n")
    assert load_csv(path, "label", drop_columns=None).feature_names == ("a", "b")  # a TypeError from * before


def test_load_csv_and_verify_file_name_arguments_of_the_wrong_kind(tmp_path):
    from modgraph.data import file_sha256

    path = tmp_path / "c.csv"
    path.write_text("a,b,label\n1,2,x\n3,4,y\n")
    assert load_csv(path, "label", drop_columns=["a"], delimiter=",", name="c").X.shape == (2, 1)
    for kwargs, error, message in [
        ({"label_column": 5}, TypeError, r"load_csv: label_column must be a column name \(a str\), got int 5"),
        ({"drop_columns": 5}, TypeError, r"load_csv: drop_columns must be a list of column names \(str\), got 5"),
        ({"drop_columns": [5]}, TypeError, r"load_csv: drop_columns must be a list of column names .*got \[5\]"),
        ({"delimiter": ";;"}, ValueError, r"load_csv: delimiter must be one character \(not a quote or a line break\)"),
        ({"delimiter": "\n"}, ValueError, r"load_csv: delimiter must be one character .*got '\\n'"),  # "no column"
        ({"delimiter": None}, TypeError, r"load_csv: delimiter must be one character .*got None"),
        ({"name": 5}, TypeError, r"load_csv: name must be a str \(or None: the file's stem\), got int"),
    ]:
        with pytest.raises(error, match=message):
            load_csv(path, **{"label_column": "label", **kwargs})
    with pytest.raises(TypeError, match=r"load_csv: path must be a file path \(a str or a Path\), got int 5"):
        load_csv(5, "label")
    with pytest.raises(TypeError, match=r"verify_file: relpath must be the file's path in the data root \(a str such "
                                        r"as 'uci/glass/glass\.data'\), got list"):
        verify_file(path, ["uci/glass/glass.data"])  # an unhashable-type error before
    with pytest.raises(DataError, match=rf"cannot check {tmp_path}: not a regular file \(a folder\?\)\. Restore "
                                        r"'uci/glass/glass\.data'"):
        verify_file(tmp_path, "uci/glass/glass.data")  # an IsADirectoryError from inside the hashing before
    with pytest.raises(TypeError, match=r"file_sha256: path must be a file path \(a str or a Path\), got NoneType"):
        file_sha256(None)
