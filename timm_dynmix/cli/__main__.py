"""``python -m timm_dynmix.cli ...``: the ``timm-dynmix`` command."""

import sys

from timm_dynmix.cli import main

sys.exit(main())
