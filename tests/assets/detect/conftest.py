"""The tiny data set's manifest, shared by the detect stage's tests."""

import pandas as pd
import pytest

from assets.ingest.scan import scan_data_folder


@pytest.fixture(scope="package")
def manifest(tiny_dataset) -> pd.DataFrame:
    return scan_data_folder(tiny_dataset, workers=2)[0]
