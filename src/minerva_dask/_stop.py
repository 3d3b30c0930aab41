"""Stopping the command line on a signal, every time, with its clean-up.

SIGTERM and SIGHUP raise :class:`Stopped` in the main thread, as Ctrl-C raises
``KeyboardInterrupt``, so that every writer's clean-up (``finally``, ``except
BaseException``) runs. Python runs a signal's handler at the next bytecode of the main
thread, wherever that is: inside a weakref callback or a ``__del__`` (the import system's
module locks have one), the exception is printed as "Exception ignored" and dropped, and
the run would go on as if never stopped. :func:`stop_on_signals` catches such a dropped
stop in ``sys.unraisablehook`` and delivers the signal again, so it lands in the run.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Stopped", "stop_on_signals"]

_STOPPING = (signal.SIGTERM, signal.SIGHUP)
_RESEND_S = 0.01  # a dropped stop is delivered again this long after


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread as Ctrl-C is; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _State:
    """The stop under way: the signal, and whether the next delivery is a resend."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.resend = False


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """For the duration: SIGTERM and SIGHUP raise :class:`Stopped` once (a second one
    cannot cut the clean-up short); Ctrl-C raises ``KeyboardInterrupt`` as Python's own
    handler does; a signal already ignored (``nohup`` ignores SIGHUP, a background job
    SIGINT) stays ignored. A stop dropped where Python ignores exceptions is delivered
    again, and raised on leaving the block if it has not landed by then. Previous
    handlers and hook are restored after. Outside the main thread (where handlers cannot
    be set) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    state = _State()

    def on_stop(signum: int, frame: Any) -> None:
        if state.signum is not None and not state.resend:
            return  # stopping already: the clean-up runs to its end
        state.signum, state.resend = state.signum or signum, False
        raise Stopped(state.signum)

    def on_interrupt(signum: int, frame: Any) -> None:
        state.signum, state.resend = signum, False
        raise KeyboardInterrupt

    previous_hook = sys.unraisablehook
    timers: list[threading.Timer] = []

    def on_unraisable(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and state.signum is not None:
            state.resend = True  # dropped: deliver it again, once out of here (a handler
            resend = threading.Timer(_RESEND_S, _thread.interrupt_main, (state.signum,))
            resend.daemon = True  # run in this hook would be dropped too)
            timers.append(resend)
            resend.start()
            return
        previous_hook(unraisable)

    handlers = {sig: on_stop for sig in _STOPPING}
    handlers[signal.SIGINT] = on_interrupt
    previous = {
        sig: signal.signal(sig, handler)
        for sig, handler in handlers.items()
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    sys.unraisablehook = on_unraisable
    try:
        yield
        for timer in timers:  # the block ended before a resent stop landed in it
            timer.cancel()
        if state.resend and state.signum is not None:
            state.resend = False
            if state.signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise Stopped(state.signum)
    finally:
        for timer in timers:
            timer.cancel()
        sys.unraisablehook = previous_hook
        for sig, old in previous.items():
            signal.signal(sig, old)
