"""Where the stores live: the data directory from the argument or the settings; URLs refused
where no mirror is set up (a stage must never write to a local folder called ``s3:``)."""

from __future__ import annotations

import pytest

from storage.errors import BadInputError
from storage.layout import DataLayout


def test_argument_then_setting_then_default(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYPTOFLOW_DATA_DIR", str(tmp_path / "env"))
    assert DataLayout.at(tmp_path / "arg").root == (tmp_path / "arg").resolve()
    assert DataLayout.at(None).root == (tmp_path / "env").resolve()
    assert DataLayout.at("").candles == (tmp_path / "env" / "candles").resolve()


def test_file_url_is_its_folder(tmp_path):
    assert DataLayout.at(f"file://{tmp_path}/d").root == (tmp_path / "d").resolve()


@pytest.mark.parametrize("url", ["s3://bucket/prefix", "memory://x", "http://host/data"])
def test_other_urls_are_refused_naming_data_dir(tmp_path, monkeypatch, url):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInputError, match="data_dir"):
        DataLayout.at(url)
    assert list(tmp_path.iterdir()) == []
