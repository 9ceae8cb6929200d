"""One JSON object per line, for the CLI's `--json` and the HTTP endpoint alike."""

from __future__ import annotations

import json
from typing import Any

# JSON leaves these raw with ensure_ascii=False, but Python's str.splitlines() and other
# readers of JSON Lines break lines on them: escaped, a line is always one object.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def json_line(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False).translate(_LINE_BREAKS)
