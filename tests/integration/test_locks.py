"""The nurture run lock: a second holder is refused; a released or dead holder frees it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from sqlalchemy.engine import Engine

from leadops.core.locks import LockHeld, run_lock


def test_second_holder_is_refused_until_release(engine: Engine) -> None:
    with run_lock(engine, "nurture"):
        with pytest.raises(LockHeld, match="another nurture run"), run_lock(engine, "nurture"):
            pass
        with run_lock(engine, "report"):  # other names are independent
            pass
    with run_lock(engine, "nurture"):
        pass


def test_a_killed_holder_leaves_no_lock(sqlite_engine: Engine) -> None:
    url = sqlite_engine.url.render_as_string(hide_password=False)
    code = textwrap.dedent(f"""
        import os
        from leadops.core.db import make_engine
        from leadops.core.locks import run_lock
        with run_lock(make_engine({url!r}), "nurture"):
            print("held", flush=True)
            os._exit(9)  # dies without releasing anything
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "held" and done.returncode == 9
    with run_lock(sqlite_engine, "nurture"):
        pass
