"""Signals turned into exceptions, and blocks that hold them until they end."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from leadops.core.interrupts import Terminated, signals_held, sigterm_raises

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="Python runs signal handlers in the main thread only",
)


def test_ctrl_c_inside_a_held_block_arrives_when_it_ends() -> None:
    finished = False
    with pytest.raises(KeyboardInterrupt), signals_held():
        os.kill(os.getpid(), signal.SIGINT)
        finished = True
    assert finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_raises_terminated_and_the_default_comes_back() -> None:
    with pytest.raises(Terminated), sigterm_raises():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_sigterm_held_reaches_the_handler_in_place_after_the_block() -> None:
    with pytest.raises(Terminated), sigterm_raises():
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
        pytest.fail("SIGTERM was not delivered when the block ended")
