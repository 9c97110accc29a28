"""The embedding cache: in memory, and in one atomically written file per encoder."""

import pytest
import torch

from cardiomm.text import EmbeddingCache, cache_file


def test_cache_file_name_carries_the_encoder_name_and_identity(tmp_path):
    first = cache_file(tmp_path, "clip", "clip|/models/a|dim=512")
    second = cache_file(tmp_path, "clip", "clip|/models/b|dim=512")
    assert first.parent == tmp_path
    assert first.name.startswith("clip-") and first.suffix == ".pt"
    assert first != second


def test_cache_lists_each_missing_text_once_in_order():
    cache = EmbeddingCache(dim=2, identity="test")
    cache.add({"b": torch.ones(2)})
    assert cache.missing(["c", "b", "a", "c"]) == ["c", "a"]


def test_cache_keeps_a_private_copy_of_what_it_is_given():
    cache = EmbeddingCache(dim=2, identity="test")
    embedding = torch.ones(2)
    cache.add({"a": embedding})
    embedding.zero_()
    assert torch.equal(cache.get("a"), torch.ones(2))


def test_cache_rejects_an_embedding_of_the_wrong_size():
    with pytest.raises(ValueError, match="expected \\(3,\\)"):
        EmbeddingCache(dim=3, identity="test").add({"a": torch.ones(4)})


def test_cache_file_is_read_back_by_a_new_cache(tmp_path):
    path = tmp_path / "nested" / "enc.pt"
    EmbeddingCache(dim=2, identity="test", path=path).add({"a": torch.tensor([1.0, 2.0])})
    reloaded = EmbeddingCache(dim=2, identity="test", path=path)
    assert torch.equal(reloaded.get("a"), torch.tensor([1.0, 2.0]))


def test_cache_write_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "enc.pt"
    EmbeddingCache(dim=2, identity="test", path=path).add({"a": torch.ones(2)})
    assert [entry.name for entry in tmp_path.iterdir()] == ["enc.pt"]


def test_cache_write_keeps_entries_another_process_added(tmp_path):
    path = tmp_path / "enc.pt"
    first = EmbeddingCache(dim=2, identity="test", path=path)
    second = EmbeddingCache(dim=2, identity="test", path=path)
    first.add({"a": torch.ones(2)})
    second.add({"b": torch.zeros(2)})
    reloaded = EmbeddingCache(dim=2, identity="test", path=path)
    assert "a" in reloaded and "b" in reloaded


def test_cache_ignores_a_file_of_another_encoder_with_a_warning(tmp_path):
    path = tmp_path / "enc.pt"
    EmbeddingCache(dim=2, identity="one", path=path).add({"a": torch.ones(2)})
    with pytest.warns(UserWarning, match="another encoder"):
        cache = EmbeddingCache(dim=2, identity="two", path=path)
    assert len(cache) == 0


def test_cache_ignores_a_corrupt_file_with_a_warning_and_replaces_it(tmp_path):
    path = tmp_path / "enc.pt"
    path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match=str(path)):
        cache = EmbeddingCache(dim=2, identity="test", path=path)
    with pytest.warns(UserWarning):
        cache.add({"a": torch.ones(2)})
    assert "a" in EmbeddingCache(dim=2, identity="test", path=path)
