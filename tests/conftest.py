import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QUSR_THREADS", "1")

import torch  # noqa: E402

# Fixtures of the fake Hugging Face Hub (hub_cache, online, fake_hub) for the weights tests.
pytest_plugins = ("hub_fixtures",)

# One thread: on a busy 2-core machine PyTorch's default threading can be ten times slower.
torch.set_num_threads(1)
