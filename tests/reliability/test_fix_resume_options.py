"""Regression test: run.py: operational judge options do not block a resume."""

from __future__ import annotations

from slim_leakage.records import Sample


# -- run.py: operational judge options do not block a resume -------------------------------------
def test_operational_judge_options_are_not_part_of_the_run_identity(tmp_path):
    from slim_leakage.judge.testing import ScriptedServer
    from slim_leakage.run import Run, RunConfig

    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        Sample(id="s1", prompt="a cow and a horse", entities=("cow", "horse"), seed=1).to_json()
        + "\n"
    )

    def identity(**judge_args):
        run = Run(
            RunConfig(
                out=str(tmp_path / "out"),
                method="vanilla",
                judge="openai-compatible",
                judge_args={"base_url": server.openai_base_url, **judge_args},
                config=str(samples),
            )
        )
        run.resolve()
        return run.identity()

    with ScriptedServer() as server:  # resolve() checks that the judge's server is up
        base = identity(concurrency="8", cache_dir=str(tmp_path / "a"))
        assert identity(concurrency="2", rpm="30", cache_dir=str(tmp_path / "b")) == base
        assert identity(model="other-model") != base  # what answers is still part of it
