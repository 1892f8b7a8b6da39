"""Every exception that leaves a traced function is reported exactly once, however quickly
CPython recycles the memory of the ones before it.

The agent used to recognise "the exception it had just reported" by the object's address. A
caught exception is freed at once and the next one is often allocated at the same address, so in
a raise-and-catch loop new exceptions were taken for the previous one and never reported. The
program below raises many distinct exceptions in the shapes real programs have (a loop, a
recursion, a generator, `throw`, a coroutine, a cancelled task, a thread, C code, the standard
library, re-raises, chained causes, exception groups) and the test counts the exception events
the hub received, by type and message: each exactly once.
"""

from __future__ import annotations

import collections
import sys

from conftest import run_traced

N = 150

PROGRAM = r'''
import asyncio
import fractions
import threading

N = __N__

def raiser(i):
    raise ValueError(f"loop-{i}")

def loop():
    for i in range(N):
        try:
            raiser(i)
        except ValueError:
            pass

def rec(depth, i):
    if depth == 0:
        raise KeyError(f"rec-{i}")
    rec(depth - 1, i)

def recursion():
    # Each exception leaves five frames of `rec` and is reported once, not five times.
    for i in range(N):
        try:
            rec(4, i)
        except KeyError:
            pass

def gen(i):
    yield i
    raise LookupError(f"gen-{i}")

def generators():
    for i in range(N):
        try:
            list(gen(i))
        except LookupError:
            pass

def waiting():
    yield 1
    yield 2

def throws():
    # An exception thrown into a generator that does not catch it leaves the generator's frame.
    for i in range(N):
        g = waiting()
        next(g)
        try:
            g.throw(IndexError(f"throw-{i}"))
        except IndexError:
            pass

async def failing(i):
    await asyncio.sleep(0)
    raise TypeError(f"coro-{i}")

async def coroutines():
    for i in range(N):
        try:
            await failing(i)
        except TypeError:
            pass

async def sleeper(i):
    await asyncio.sleep(10)

async def cancellations():
    # CancelledError thrown into a task's coroutine leaves its frame (the awaiter gets a new one,
    # raised and caught in its own frame: not an exception leaving a function).
    for i in range(N):
        t = asyncio.ensure_future(sleeper(i))
        await asyncio.sleep(0)
        t.cancel(f"cancel-{i}")
        try:
            await t
        except asyncio.CancelledError:
            pass

def in_thread():
    for i in range(N):
        try:
            raiser_t(i)
        except OSError:
            pass

def raiser_t(i):
    raise OSError(f"thread-{i}")

def parse(i):
    # Raised by C code (int) called from a traced function.
    return int(f"c-{i}")

def c_raised():
    for i in range(N):
        try:
            parse(i)
        except ValueError:
            pass

def fraction(i):
    # Raised in the standard library (untraced): the exception first leaves frames the tracer
    # does not follow, then this one.
    return fractions.Fraction(f"bad-{i}")

def library():
    for i in range(N):
        try:
            fraction(i)
        except ValueError:
            pass

def bare_reraise(i):
    try:
        raiser_r(i)
    except ZeroDivisionError:
        raise

def named_reraise(i):
    try:
        bare_reraise(i)
    except ZeroDivisionError as e:
        raise e

def raiser_r(i):
    raise ZeroDivisionError(f"reraise-{i}")

def reraises():
    # Re-raised as it is (`raise`, `raise e`): the same exception, reported once.
    for i in range(N):
        try:
            named_reraise(i)
        except ZeroDivisionError:
            pass

def inner(i):
    raise ArithmeticError(f"inner-{i}")

def wrapping(i):
    try:
        inner(i)
    except ArithmeticError as e:
        raise RuntimeError(f"wrapped-{i}") from e

def chained():
    # `raise X from e`: two exceptions, each reported once.
    for i in range(N):
        try:
            wrapping(i)
        except RuntimeError:
            pass

def group(i):
    raise ExceptionGroup(f"group-{i}", [NameError(f"member-{i}")])

def groups():
    for i in range(N):
        try:
            group(i)
        except* NameError:
            pass

def f5(): raise AssertionError("five-frames")
def f4(): f5()
def f3(): f4()
def f2(): f3()
def f1(): f2()

def once_through_five():
    try:
        f1()
    except AssertionError:
        pass

class Finalised:
    def __del__(self):
        finalised.append(True)

finalised = []

def holds_a_local():
    witness = Finalised()
    raise ValueError("finaliser")

def no_reference_kept():
    # The tracer keeps no reference to a reported exception, so nothing keeps its traceback's
    # frames, and their locals, alive: the finaliser runs as the handler ends.
    try:
        holds_a_local()
    except ValueError:
        pass
    print("finalised at once" if finalised else "finaliser delayed")

loop()
recursion()
generators()
throws()
asyncio.run(coroutines())
asyncio.run(cancellations())
t = threading.Thread(target=in_thread)
t.start()
t.join()
c_raised()
library()
reraises()
chained()
groups()
once_through_five()
no_reference_kept()
print("done")
'''.replace("__N__", str(N))


def expected() -> collections.Counter:
    want: collections.Counter = collections.Counter()
    for i in range(N):
        want[("ValueError", f"loop-{i}")] += 1
        want[("KeyError", f"'rec-{i}'")] += 1  # str(KeyError) is the key's repr
        want[("LookupError", f"gen-{i}")] += 1
        want[("IndexError", f"throw-{i}")] += 1
        want[("TypeError", f"coro-{i}")] += 1
        want[("OSError", f"thread-{i}")] += 1
        want[("ValueError", f"invalid literal for int() with base 10: 'c-{i}'")] += 1
        want[("ValueError", f"Invalid literal for Fraction: 'bad-{i}'")] += 1
        want[("ZeroDivisionError", f"reraise-{i}")] += 1
        want[("ArithmeticError", f"inner-{i}")] += 1
        want[("RuntimeError", f"wrapped-{i}")] += 1
        want[("ExceptionGroup", f"group-{i} (1 sub-exception)")] += 1
        if sys.version_info >= (3, 12):
            # 3.11's profile hook never sees an exception that no Python frame receives
            # (docs/PYTHON.md): the task's C code takes the CancelledError from the coroutine.
            want[("asyncio.exceptions.CancelledError", f"cancel-{i}")] += 1
    want[("AssertionError", "five-frames")] += 1
    want[("ValueError", "finaliser")] += 1
    return want


def test_every_exception_is_reported_once(hub, tmp_path):
    run_id, p = run_traced(
        hub,
        tmp_path,
        PROGRAM,
        "exc-identity",
        # The default cap (50 a second) would drop most of them on purpose.
        SIGHTLINE_MAX_EXCEPTIONS_PER_S="1000000",
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-2:] == ["finalised at once", "done"], p.stdout
    want = expected()
    total = sum(want.values())
    evs = hub.wait_events(run_id, lambda es: len(es) >= total, timeout=60, source_events="exception")
    got = collections.Counter((e["entity_id"], e["payload"]["message"]) for e in evs)
    missing = want - got
    extra = got - want
    per_type = {t: (sum(n for (tt, _), n in got.items() if tt == t), sum(n for (tt, _), n in want.items() if tt == t))
                for t in sorted({t for t, _ in want} | {t for t, _ in got})}
    assert not missing and not extra, (
        f"{len(evs)} exception events for {total} exceptions (received, expected by type: {per_type}); "
        f"missing {sum(missing.values())}: {sorted(missing)[:10]}; "
        f"extra {sum(extra.values())}: {sorted(extra)[:10]}"
    )
    # The five-frame exception is reported where it was raised.
    (five,) = [e for e in evs if e["payload"]["message"] == "five-frames"]
    assert five["payload"]["leaving"] == "f5"
    assert [f["function"] for f in five["payload"]["stack"][-6:]] == ["once_through_five", "f1", "f2", "f3", "f4", "f5"]
    # Nothing was suppressed by the rate cap, so the counts above are the tracer's own.
    assert all(e["payload"]["suppressed_before"] == 0 for e in evs)
