import pytest
import torch

from modgraph.data.checks import check_features, check_labels
from modgraph.errors import DataError


def test_non_finite_features_are_named():
    x = torch.zeros(4, 3)
    x[2, 1] = float("nan")
    with pytest.raises(DataError, match=r"cora: 1 non-finite values \(NaN\); the first at row 2, column 1"):
        check_features(x, "cora")
    x[2, 1] = float("inf")
    with pytest.raises(DataError, match=r"\(Inf\)"):
        check_features(x)
    sparse = torch.sparse_coo_tensor([[0], [1]], [float("nan")], (2, 2), check_invariants=True)
    with pytest.raises(DataError, match="1 NaN/Inf values in the sparse features"):
        check_features(sparse)
    finite = torch.ones(2, 2)
    assert check_features(finite) is finite  # finite features come back as they are: the same tensor, unchanged
    assert torch.equal(finite, torch.ones(2, 2))
    finite_sparse = torch.sparse_coo_tensor([[0], [1]], [2.0], (2, 2), check_invariants=True)
    assert check_features(finite_sparse) is finite_sparse


def test_labels_out_of_range_and_empty_data():
    with pytest.raises(DataError, match=r"labels must be in \[0, 3\), got 5 at row 1 \(1 out of range\)"):
        check_labels(torch.tensor([0, 5, 2]), 3)
    with pytest.raises(DataError, match=r"labels must be in \[0, 3\), got -1 at row 0"):
        check_labels(torch.tensor([-1, 0]), 3)
    with pytest.raises(DataError, match="must be integers"):
        check_labels(torch.tensor([0.0, 1.0]), 3)
    with pytest.raises(DataError, match="the data set is empty"):
        check_labels(torch.tensor([], dtype=torch.long), 3)
    with pytest.raises(DataError, match=r"empty \(shape \(0, 4\)\)"):
        check_features(torch.zeros(0, 4))


def test_label_equal_to_num_classes_and_bool_labels_are_rejected():
    with pytest.raises(DataError, match=r"labels must be in \[0, 3\), got 3 at row 1 \(1 out of range\)"):
        check_labels(torch.tensor([0, 3, 2]), 3)
    assert torch.equal(check_labels(torch.tensor([0, 2, 1]), 3), torch.tensor([0, 2, 1]))  # 0..C-1 pass
    with pytest.raises(DataError, match="must be integers 0..1, got dtype torch.bool"):
        check_labels(torch.tensor([True, False]), 2)


def test_the_first_fault_is_the_one_named():
    x = torch.zeros(5, 3)
    x[1, 2] = x[3, 0] = float("nan")
    with pytest.raises(DataError, match=r"2 non-finite values \(NaN\); the first at row 1, column 2"):
        check_features(x)
    with pytest.raises(DataError, match=r"got 5 at row 1 \(2 out of range\)"):
        check_labels(torch.tensor([0, 5, 1, 7]), 3)


def test_uncoalesced_sparse_features_are_checked_as_summed():
    # two entries at the same place, each finite: the tensor's value there is their sum, 6e38, beyond float32
    sparse = torch.sparse_coo_tensor([[0, 0], [1, 1]], [3e38, 3e38], (2, 2), dtype=torch.float32)
    assert not sparse.is_coalesced() and torch.isinf(sparse.to_dense()).any()
    with pytest.raises(DataError, match="1 NaN/Inf values in the sparse features"):
        check_features(sparse)


@pytest.mark.parametrize("layout", ["csr", "csc"])
def test_compressed_sparse_features_are_checked(layout: str) -> None:
    dense = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    convert = {"csr": torch.Tensor.to_sparse_csr, "csc": torch.Tensor.to_sparse_csc}[layout]
    x = convert(dense)
    assert check_features(x) is x
    dense[0, 1] = float("nan")
    with pytest.raises(DataError, match="1 NaN/Inf values in the sparse features"):
        check_features(convert(dense))
