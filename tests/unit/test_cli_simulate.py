import json


def test_simulate_preset_text_and_json(invoke_cli, tmp_config):
    r = invoke_cli("simulate", "--preset", "small_gp", "--seed", "3", "--config", str(tmp_config))
    assert r.exit_code == 0, r.output
    assert "Simulated day: small_gp (seed 3)" in r.output and "service level" in r.output
    r2 = invoke_cli("simulate", "--preset", "small_gp", "--seed", "3", "--json", "--config", str(tmp_config))
    data = json.loads(r2.output)
    # every offered call has exactly one outcome in the simulated day too
    outcomes = (
        sum(
            data[k]
            for k in (
                "answered",
                "abandoned",
                "overflowed",
                "timed_out",
                "refused",
                "interrupted",
                "callbacks_requested",
            )
        )
        - data["callbacks_merged"]
    )
    assert data["offered"] > 0 and outcomes == data["offered"] and data["outcome_errors"] == []
    r3 = invoke_cli("simulate", "--preset", "small_gp", "--seed", "3", "--json", "--config", str(tmp_config))
    assert r3.output == r2.output  # deterministic


def test_simulate_errors_are_one_line(invoke_cli, tmp_config, tmp_path):
    r = invoke_cli("simulate", "--preset", "hospital", "--config", str(tmp_config))
    assert r.exit_code == 2 and "unknown preset 'hospital'" in r.output
    bad = tmp_path / "day.toml"
    bad.write_text("this is = = not toml")
    r = invoke_cli("simulate", "--scenario", str(bad), "--config", str(tmp_config))
    assert r.exit_code == 1 and str(bad) in r.output
    r = invoke_cli("simulate", "--scenario", str(tmp_path / "missing.json"), "--config", str(tmp_config))
    assert r.exit_code == 1 and "cannot read" in r.output
