import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QUSR_THREADS", "1")
# Encoded critiques are cached on disk; tests must neither read the user's cache nor fill it.
os.environ["QUSR_CACHE"] = tempfile.mkdtemp(prefix="qusr-test-cache-")
atexit.register(shutil.rmtree, os.environ["QUSR_CACHE"], ignore_errors=True)

import torch  # noqa: E402

# Fixtures of the fake Hugging Face Hub (hub_cache, online, fake_hub) for the weights tests.
pytest_plugins = ("hub_fixtures",)

# One thread: on a busy 2-core machine PyTorch's default threading can be ten times slower.
torch.set_num_threads(1)
