"""The pages under hostile input and failure, in Streamlit's AppTest: crafted names shown as text, a
failed or running sweep's controls, a bad record in the store, a store that cannot serve."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from apptest import APP, button, delete_on_page, driven, no_errors, tiny_spec, watch
from conftest import write_class_folders
from streamlit.testing.v1 import AppTest

LINK = "[click](javascript:alert)"      # folder names hold no '/', so no full URLs here
IMAGE = "![img](pixel.png)"


def test_user_text_is_shown_as_text_never_as_markdown(data_root: Path) -> None:
    """A crafted ?sweep= or class folder name must not become a live link or an image fetched from outside."""
    write_class_folders(data_root / "crafted", per_class=3,
                        classes={IMAGE: (200, 40, 40), LINK: (40, 180, 60)})
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["sweep"] = LINK
    at.run()
    at.switch_page("views/2_Sweep.py").run()
    shown = [w.value for w in at.warning]
    assert shown and all(LINK not in text for text in shown), shown
    at.session_state["dataset"] = str(data_root / "crafted")     # the sidebar's choice
    at.switch_page("views/1_Dataset.py").run()
    markdown = [m.value for m in at.markdown] + [w.value for w in at.warning]
    assert any("click" in text for text in markdown), markdown
    assert all(LINK not in text and IMAGE not in text for text in markdown), markdown


def test_failed_sweep_shows_why_offers_resume_and_delete(data_root: Path, own_store) -> None:
    own_store.create_sweep(tiny_spec("broken-data", data_root / "colours"))
    own_store.set_failed("broken-data", "class 'red' has 1 image, fewer than the 2 folds")
    at = watch("broken-data")
    assert not at.exception, at.exception
    assert any("class 'red' has 1 image" in e.value for e in at.error), [e.value for e in at.error]
    assert not any("restarted" in w.value for w in at.warning), [w.value for w in at.warning]
    assert not button(at, "Resume").disabled
    button(at, "Delete").click().run()         # the first click only asks
    assert "broken-data" in own_store.sweep_names()
    button(at, "Delete for good").click().run()
    assert not at.exception, at.exception
    assert "broken-data" not in own_store.sweep_names()
    assert "sweep" not in at.query_params


def test_a_running_sweep_is_not_deleted(data_root: Path, own_store) -> None:
    """A real process whose command line says `core` stands for its driver: deleting is refused in one line."""
    with driven(own_store, "busy", data_root):
        at = watch("busy")
        delete_on_page(at)
        assert not at.exception, at.exception
        assert any("stop it before deleting it" in e.value for e in at.error), [e.value for e in at.error]
        assert "busy" in own_store.sweep_names()


def test_a_bad_record_never_takes_a_page_down(data_root: Path, own_store) -> None:
    """Sweeps written by other code (a bad name, a spec that does not parse) are named and left out."""
    import optuna
    own_store.create_sweep(tiny_spec("good-one", data_root / "colours"))
    bad_name = optuna.create_study(study_name="bad/name here", storage=own_store.storage)
    bad_name.set_user_attr("spec", tiny_spec("x", data_root / "colours").to_dict() | {"name": "bad/name here"})
    storage = own_store.storage
    optuna.create_study(study_name="bad-spec", storage=storage).set_user_attr("spec", {"folds": "many"})
    optuna.create_study(study_name="bad-status", storage=storage).set_user_attr("status", "exploded")
    for query in (None, "bad-spec"):
        at = AppTest.from_file(APP, default_timeout=60)
        if query:
            at.query_params["sweep"] = query
        at.run()      # the entry: the server's start-up reads every sweep
        assert not at.exception, [e.value for e in at.exception]
        for path in ("views/2_Sweep.py", "views/3_Results.py"):
            at.switch_page(path).run()
            assert not at.exception, (path, [e.value for e in at.exception])
            warned = " ".join(w.value for w in at.warning)
            warned = warned.replace("\\", "")
            assert all(bad in warned for bad in ("bad/name here", "bad-spec", "bad-status")), warned
        assert at.multiselect[0].options == ["good-one"]
    assert watch("good-one").selectbox[0].options == ["good-one"]


STORE_URLS = [("postgresql+psycopg2://u:hunter2@127.0.0.1:1/x", "u:***@127.0.0.1:1/x"),
              ("nonsense://", "nonsense://"), ("not a url", "not a url")]


def one_store_error(messages: list[str], shown: str) -> None:
    """One line naming the store (without its password), and nothing else went wrong."""
    text = [m.replace("\\", "") for m in messages]     # plain() escapes ':' and '*'
    assert len(text) == 1 and shown in text[0], text
    assert "hunter2" not in text[0] and "\n" not in text[0].strip(), text


@pytest.mark.parametrize("url, shown", STORE_URLS)
def test_a_store_that_cannot_be_opened_is_one_line(url: str, shown: str, data_root: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry stops every page with it (each page of a real server: test_browser.py)."""
    monkeypatch.setenv("TRANSFERLAB_STORAGE", url)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    one_store_error([e.value for e in at.error], shown)
    assert not at.title and not at.selectbox, "neither the page nor the sidebar runs"


def test_a_read_only_store_refuses_a_launch_in_one_line(data_root: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from core.runs.store import RunStore
    db = tmp_path / "ro.db"
    RunStore(f"sqlite:///{db}").create_sweep(tiny_spec("kept", data_root / "colours"))
    monkeypatch.setenv("TRANSFERLAB_STORAGE", f"sqlite:///file:{db}?mode=ro&uri=true")
    at = watch("kept")
    no_errors(at)
    at.text_input(key="spec.name").input("new-one")
    at.multiselect(key="spec.swept").set_value([]).run()        # the form as it is: the preset waits for its plan
    button(at, "Launch").click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "readonly" in at.error[0].value, [e.value for e in at.error]


def test_a_store_file_deleted_or_replaced_under_the_server_is_one_line_and_never_recreated(
        data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18: the store deleted mid-sweep; the page kept reading the deleted file through its open
    connection, and a Resume made an empty database in its place. The entry checks the file first."""
    from core.runs.store import RunStore
    from ui.widgets import plain
    path = tmp_path / "store.db"
    monkeypatch.setenv("TRANSFERLAB_STORAGE", f"sqlite:///{path}")
    RunStore().create_sweep(tiny_spec("kept", data_root / "colours"))
    first = AppTest.from_file(APP, default_timeout=60).run()     # the server opens the store (cached per URL)
    assert not first.exception and not any("run store" in e.value for e in first.error)
    path.unlink()
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["sweep"] = "kept"
    at.run()
    assert [e.value for e in at.error] == [f"The run store's file {plain(path.resolve())} was deleted (or "
                                          "moved away) after this server opened it: nothing is shown or "
                                          "written until it is back. Restore it, or restart the server to "
                                          "begin a new, empty store."]
    assert not at.title and not at.button and not at.exception, "nothing of the page, no Resume"
    assert not path.exists(), "no empty store made in its place"
    other = RunStore(f"sqlite:///{tmp_path / 'other.db'}")
    other.create_sweep(tiny_spec("other", data_root / "colours"))
    shutil.copy(tmp_path / "other.db", path)                 # another store's file put in its place
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert len(at.error) == 1 and "was replaced by another file" in at.error[0].value, \
        [e.value for e in at.error]
    assert not at.title and not at.exception


def test_a_deleted_store_is_not_replaced_by_an_empty_one_by_a_driver_or_a_restart(
        data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18: after the store was deleted, a resumed driver made an empty database at its path, and
    the next server start showed no sweeps and no word of why."""
    from core.runs.store import RunStore
    path = tmp_path / "store.db"
    monkeypatch.setenv("TRANSFERLAB_STORAGE", f"sqlite:///{path}")
    RunStore().create_sweep(tiny_spec("kept", data_root / "colours"))
    path.unlink()
    driver = subprocess.run([sys.executable, "-m", "core", "resume", "kept"], cwd=Path(APP).parent,
                            capture_output=True, text=True, timeout=120)
    assert driver.returncode != 0, driver.stderr
    assert "is missing, but a run store was made there" in driver.stderr, driver.stderr
    assert not path.exists(), "the driver made no empty store in its place"
    at = AppTest.from_file(APP, default_timeout=60).run()    # a server started now: it never opened the store
    assert len(at.error) == 1 and "is missing, but a run store was made there" in at.error[0].value, \
        [e.value for e in at.error]
    assert not at.title and not at.exception and not path.exists()
