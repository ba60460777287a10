"""Entry point of one worker process: ``python -m tunelab.tune._worker --standby SPEC.json``.

A worker starts before its spec exists: ``tunelab tune --workers N`` launches its helpers the
moment it has read the config, so their start-up (importing
torch, Optuna and tunelab, ~5 s, and ``torch._dynamo``, ~2 s, which the first optimiser would
otherwise import in the middle of the first trial) overlaps the parent's own; the parent writes
the spec when the study is ready. A standby worker exits quietly if the parent dies first; a
parent that does not need it terminates it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

STANDBY_POLL_S = 0.05


def wait_for_spec(spec_path: Path, parent_pid: int) -> bool:
    """Warm up, then wait until ``spec_path`` exists (True) or the parent is gone (False)."""
    import torch._dynamo  # noqa: F401  (imported by the first optimiser: pay it while waiting)

    from . import _config_study  # noqa: F401

    while not spec_path.exists():
        if os.getppid() != parent_pid:
            return False
        time.sleep(STANDBY_POLL_S)
    return True


def main(argv: list[str]) -> int:
    # The parent interrupts its helpers when the user presses Ctrl-C or its own run fails, at
    # any point, imports included: that ends this process quietly, without a traceback. SIGINT
    # is how it asks, so a helper handles it even when it inherited an ignored SIGINT (a parent
    # started with "&" by a shell without job control), which would leave it running until
    # the parent's 30-s wait kills it, its trial not re-queued.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _work(Path(argv[-1]))  # argv: --standby SPEC
    except KeyboardInterrupt:
        return 130


def _work(spec_path: Path) -> int:
    if not wait_for_spec(spec_path, parent_pid=os.getppid()):
        return 0
    import torch

    from ..config import parse_config
    from ._config_study import work
    from ._engine import quiet_optuna
    from ._loop import fatal_message, is_fatal
    from ._options import StudyOptions

    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    if spec.get("log"):  # under the parent's live table, this worker's lines go to a log file
        sys.stdout.flush()
        sys.stderr.flush()
        log = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
    result_path = spec_path.with_suffix(".result.json")
    torch.set_num_threads(int(spec["threads"]))
    try:
        cfg = parse_config(spec["config"])
        options = StudyOptions.from_dict(spec["options"])  # as the parent resolved it
        with quiet_optuna():
            reason = work(
                cfg,
                options,
                worker=int(spec["worker"]),
                progress=spec["progress"],
                parent_pid=int(spec["parent_pid"]),
            )
    except Exception as exc:
        if not is_fatal(exc):
            raise
        # Exit code 2 tells the parent "fatal": it stops the study and its other helpers.
        message = fatal_message(exc)
        result_path.write_text(json.dumps({"error": message}), encoding="utf-8")
        print(message, file=sys.stderr)
        return 2
    result_path.write_text(json.dumps({"reason": reason}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # The parent waits for this exit before its summary: skip the shutdown's collections.
    from .._exit import quick_exit_gc

    quick_exit_gc()
    sys.exit(code)
