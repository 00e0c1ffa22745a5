"""The two callbacks long work reports through, in every wing: `Progress` sees (done, total) as it goes,
`Say` one line for the user (the CLI prints it, a driver logs it, the page shows it)."""
from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]
Say = Callable[[str], None]
