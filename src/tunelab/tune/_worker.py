"""Entry point of one worker process: ``python -m tunelab.tune._worker SPEC.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from ..config import parse_config
from ..errors import FatalError


def main(argv: list[str]) -> int:
    spec_path = Path(argv[0])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    result_path = spec_path.with_suffix(".result.json")
    torch.set_num_threads(int(spec["threads"]))
    from ._config_study import work
    from ._engine import quiet_optuna

    try:
        cfg = parse_config(spec["config"])
        with quiet_optuna():
            reason = work(
                cfg,
                None,
                worker=int(spec["worker"]),
                progress=spec["progress"],
                parent_pid=int(spec["parent_pid"]),
            )
    except FatalError as exc:
        result_path.write_text(json.dumps({"error": str(exc)}), encoding="utf-8")
        print(str(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    result_path.write_text(json.dumps({"reason": reason}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
