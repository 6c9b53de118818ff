"""rsrt run's schedule: a notebook starts only after the notebooks it reads from, at most two at once, and a failure
starts nothing new. The notebooks here are stand-ins that record when they ran; the scheduler is the real one."""

import threading
import time
from pathlib import Path

import pytest

from rsrt_utils.study import notebook_runner
from rsrt_utils.study.notebook_runner import NEEDS, NotebookFailed, list_notebooks, notebook_needs


def test_every_shipped_notebook_states_what_it_reads():
    shipped = [nb.name[:2] for nb in list_notebooks()]
    assert set(shipped) == set(NEEDS)
    for number, needs in NEEDS.items():
        assert all(need < number for need in needs), f"{number} waits for a later notebook: {needs}"
        assert number == "00" or "00" in needs or any(NEEDS[n] for n in needs), f"{number} must wait for the data import"


def test_needs_of_the_shipped_notebooks_and_of_a_new_one():
    names = [Path(n) for n in ("00_data.ipynb", "03_retrieval.ipynb", "08_report.ipynb", "09_retrieval_quality.ipynb",
                               "10_new.ipynb")]
    needs = notebook_needs(names)
    assert needs[names[3]] == {names[0]}
    assert needs[names[2]] == {names[0], names[1]}  # among the selected ones only
    assert needs[names[4]] == set(names[:4])  # a notebook NEEDS does not list waits for every earlier one


class _Kernel:
    def __init__(self, kernel_name):
        self.closed = False

    def shutdown(self):
        self.closed = True


@pytest.fixture
def recorded(monkeypatch):
    """Stand-in notebooks: each records its start and end; `fail` names one that raises NotebookFailed."""
    events, lock, state = [], threading.Lock(), {"fail": None, "running": 0, "most": 0}

    def execute(notebook, run, kernel, bar):
        with lock:
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])
            events.append(("start", notebook.name[:2], time.monotonic()))
        time.sleep(0.05)
        with lock:
            state["running"] -= 1
            events.append(("end", notebook.name[:2], time.monotonic()))
        if notebook.name[:2] == state["fail"]:
            raise NotebookFailed(f"{notebook.name} failed in cell 2")
        return 0.1

    monkeypatch.setattr(notebook_runner, "_execute", execute)
    monkeypatch.setattr(notebook_runner, "_AheadKernel", _Kernel)
    return events, state


class _Run:
    class params:
        run_name = "schedule"


def test_each_notebook_starts_after_what_it_reads_and_two_run_at_once(recorded):
    events, state = recorded
    timings = notebook_runner._execute_all(list_notebooks(), _Run(), "python3", progress=False)
    assert sorted(timings) == [nb.stem for nb in list_notebooks()]
    start = {name: t for kind, name, t in events if kind == "start"}
    end = {name: t for kind, name, t in events if kind == "end"}
    for number, needs in NEEDS.items():
        for need in needs:
            assert start[number] >= end[need], f"{number} started before {need} ended"
    assert state["most"] == 2


def test_a_failure_starts_nothing_new_and_is_raised(recorded):
    events, state = recorded
    state["fail"] = "03"
    with pytest.raises(NotebookFailed, match="03_retrieval"):
        notebook_runner._execute_all(list_notebooks(), _Run(), "python3", progress=False)
    started = {name for kind, name, _ in events if kind == "start"}
    assert started.isdisjoint({"04", "06", "08"})  # they read 03's scores
    assert all(("end", name) in {(k, n) for k, n, _ in events} for name in started)  # the running ones finished
