"""French (issue 12): a queue, an announcement and a missed-call callback in French play
shipped French files (none falls back to English)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pypbx.flows.callback import announcement
from pypbx.flows.queue import PROMPTS_DIR, announcement_ids

FR = Path(PROMPTS_DIR) / "fr"


def test_queue_announcement_in_french_resolves_to_french_files():
    ids = announcement_ids("fr", 3, 21 * 60, True)
    assert ids == [
        "you_are_caller_number",
        "num_3_ord",
        "caller_number_suffix",
        "estimated_wait_is_about",
        "num_21_fem",
        "minutes",
        "callback_offer",
    ]
    assert all((FR / f"{i}.wav").is_file() for i in ids)
    assert announcement_ids("fr", 1, 60, False)[1:] == [
        "num_1_ord",
        "caller_number_suffix",
        "estimated_wait_is_about",
        "num_1_fem",
        "minute",
    ]


def test_missed_call_announcement_in_french_is_all_french():
    files = announcement("fr", "+33144556677", dt.datetime(2026, 3, 29, 14, 30), region="FR")
    assert files and all(Path(f).parent == FR and Path(f).is_file() for f in files)
    assert [Path(f).stem for f in files][:4] == ["calling_back", "num_0", "num_1", "num_4"]
    assert [Path(f).stem for f in files][-3:] == ["missed_at", "num_14", "num_30"]


def test_queue_language_fr_accepted(invoke_cli, tmp_config):
    c = ("--config", str(tmp_config))
    r = invoke_cli("queue", "add", "accueil", "--language", "fr", *c)
    assert r.exit_code == 0, r.output
    shown = json.loads(invoke_cli("queue", "show", "accueil", "--json", *c).output)
    assert shown["language"] == "fr"
