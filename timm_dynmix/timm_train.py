"""``python -m timm_dynmix.timm_train PATH/TO/train.py --aug dynmix ...`` (what ``torchrun -m`` runs).

The launcher lives in :mod:`timm_dynmix.integrations.timm_train`; this module is the ``-m`` entry point, the same
as ``timm-dynmix timm-train``. Importing it (rather than running it) gives the launcher's names, as before.
"""

from __future__ import annotations

import sys

from timm_dynmix.integrations.timm_train import *  # noqa: F403 - the documented names of the former module
from timm_dynmix.integrations.timm_train import __all__  # noqa: F401

if __name__ == "__main__":
    from timm_dynmix.cli import main

    sys.exit(main(["timm-train", *sys.argv[1:]]))
