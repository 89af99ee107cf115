import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("LANDSCAPE_TEST_THREADS", "1")))


@pytest.fixture
def gen():
    """A fresh seeded CPU generator."""
    return torch.Generator().manual_seed(1234)
