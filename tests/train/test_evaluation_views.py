"""Official scores of a method on a dataset: the ranking view (centre crop) and the full view."""

import pytest

from cardiomm.data.dataset import SliceDataset
from cardiomm.data.masking import evaluation_masks
from cardiomm.model import ZeroFilled
from cardiomm.train import evaluate_reconstructor
from tests.builders import write_site_file


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    files = [
        write_site_file(root, "Center001", "Siemens_30T_Vida", "P001", shape=(2, 3, 4, 24, 32))
    ]
    return SliceDataset(files, evaluation_masks(("Uniform", 4)), show_progress=False)


def test_the_default_is_the_ranking_view_only(dataset):
    result = evaluate_reconstructor(ZeroFilled(), dataset, show_progress=False)
    assert {record["view"] for record in result.records} == {"ranking"}
    assert len(result.records) == len(dataset)


def test_both_views_give_one_record_per_image_and_view(dataset):
    result = evaluate_reconstructor(
        ZeroFilled(), dataset, show_progress=False, views=("ranking", "full")
    )
    ranking = [r for r in result.records if r["view"] == "ranking"]
    full = [r for r in result.records if r["view"] == "full"]
    assert len(ranking) == len(full) == len(dataset)
    assert [r["psnr"] for r in ranking] != [r["psnr"] for r in full]


def test_scores_of_two_views_are_never_pooled(dataset):
    result = evaluate_reconstructor(
        ZeroFilled(), dataset, show_progress=False, views=("ranking", "full")
    )
    with pytest.raises(ValueError, match="group by 'view'"):
        result.summary()
    assert {row["view"] for row in result.summary(["view"])} == {"ranking", "full"}


def test_an_unknown_view_is_refused(dataset):
    with pytest.raises(ValueError, match="views must be among"):
        evaluate_reconstructor(ZeroFilled(), dataset, show_progress=False, views=("crop",))
