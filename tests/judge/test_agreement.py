import json
import math

import pytest

from slim_leakage.errors import ValidationError
from slim_leakage.judge.agreement import (
    HumanLabel,
    agreement,
    kendall_tau_b,
    krippendorff_alpha,
    pairwise_accuracy,
    parse_labels,
    read_labels,
    spearman,
    spearman_interval,
)
from slim_leakage.records import LABELS, Generation, Sample, Verdict
from slim_leakage.rundir import RunDir

HEADER = ["sample_id", "method", "annotator", "label"]

# Judge codes and mean human codes with ties on both sides (hand-computed below).
X = [2, 1, 0, 0, -1]
Y = [1.5, 1.5, 0, -1, -1]


def test_spearman_with_ties_matches_hand_computation():
    # ranks x: 5, 4, 2.5, 2.5, 1; ranks y: 4.5, 4.5, 3, 1.5, 1.5 (both mean 3)
    # sum dxdy = 8.25, sum dx^2 = 9.5, sum dy^2 = 9
    rho, _ = spearman(X, Y)
    assert rho == pytest.approx(8.25 / math.sqrt(9.5 * 9))


def test_kendall_tau_b_with_ties_matches_hand_computation():
    # 10 pairs: 7 concordant, 0 discordant, 1 tied in x only, 2 tied in y only
    tau, _ = kendall_tau_b(X, Y)
    assert tau == pytest.approx(7 / math.sqrt((7 + 1) * (7 + 2)))


def test_pairwise_accuracy_counts_shared_ties_as_agreement():
    assert pairwise_accuracy(X, Y) == pytest.approx(7 / 10)
    # both tie on (0, 1), agree on the other two pairs, disagree on none
    assert pairwise_accuracy([1, 1, 0], [2, 2, -1]) == 1.0
    # one tie on one side only: pair (0, 1) counts as a disagreement
    assert pairwise_accuracy([1, 1, 0], [2, 1, -1]) == pytest.approx(2 / 3)
    assert pairwise_accuracy([1], [1]) is None


def test_krippendorff_alpha_reproduces_the_published_worked_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders, 12 units,
    # missing values; published alphas 0.743 nominal, 0.815 ordinal, 0.849 interval.
    n = None
    coders = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    units = {u: [c[u] for c in coders if c[u] is not None] for u in range(12)}
    assert krippendorff_alpha(units, level="nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(units, level="ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(units, level="interval") == pytest.approx(0.849, abs=5e-4)


def test_krippendorff_alpha_small_cases_by_hand():
    # o11 = 2, o12 = o21 = 1; n1 = 3, n2 = 1, n = 4: alpha = 1 - 3 * 2 / 6 = 0
    assert krippendorff_alpha({"a": [1, 1], "b": [1, 2]}, level="nominal") == pytest.approx(0)
    assert krippendorff_alpha({"a": [1, 1], "b": [2, 2]}) == pytest.approx(1.0)
    assert krippendorff_alpha({"a": [1, 1], "b": [1]}) is None  # one distinct value
    with pytest.raises(ValidationError, match="'ratio'"):
        krippendorff_alpha({"a": [1, 2]}, level="ratio")


def _labels(rows):
    return [HumanLabel(s, "deleaker", a, lab) for s, a, lab in rows]


def test_agreement_report_by_hand():
    judge = {
        "s0": "mitigation-major",
        "s1": "mitigation-minor",
        "s2": "no-change",
        "s3": "no-change",
        "s4": "degradation-minor",
        "only-judge": "no-change",
    }
    human = _labels(
        [
            ("s0", "ann", "mitigation-major"),
            ("s0", "bob", "mitigation-minor"),  # mean 1.5
            ("s1", "ann", "mitigation-minor"),
            ("s1", "bob", "mitigation-major"),  # mean 1.5
            ("s2", "ann", "no-change"),
            ("s3", "ann", "degradation-minor"),
            ("s4", "bob", "degradation-minor"),
            ("only-human", "ann", "no-change"),
        ]
    )
    r = agreement(judge, human, n_boot=200, seed=0)
    assert r["n_samples"] == 5 and r["n_judgements"] == 7 and r["n_annotators"] == 2
    assert r["n_judge_only"] == 1 and r["n_reference_only"] == 1
    assert r["spearman"] == pytest.approx(8.25 / math.sqrt(9.5 * 9))
    assert r["kendall_tau_b"] == pytest.approx(7 / math.sqrt(72))
    assert r["pairwise_accuracy"] == pytest.approx(0.7)
    low, high = r["spearman_ci"]
    assert -1 <= low <= high <= 1
    m = r["confusion"]["matrix"]
    i = {label: k for k, label in enumerate(LABELS)}
    assert m[i["mitigation-major"]][i["mitigation-major"]] == 1
    assert m[i["mitigation-major"]][i["mitigation-minor"]] == 1
    assert m[i["no-change"]][i["degradation-minor"]] == 1
    assert sum(map(sum, m)) == 7
    # signs: judge (+,+,0,0,-), mean human (+,+,0,-,-): 4 of 5
    assert r["direction_agreement"] == pytest.approx(0.8)
    # same non-zero direction judgements: s0 (2,2) (2,1), s1 (1,1) (1,2), s4 (-1,-1): 3 of 5
    assert r["magnitude_n"] == 5
    assert r["magnitude_agreement"] == pytest.approx(3 / 5)
    # pairable units s0 (2, 1) and s1 (1, 2): o(1,2) = o(2,1) = 2, n1 = n2 = 2, n = 4,
    # delta^2 = (4 - 2)^2 = 4: alpha = 1 - 3 * (4 * 4) / (8 * 4) = -0.5
    assert r["krippendorff_alpha_ordinal"] == pytest.approx(-0.5)
    assert r["annotators"]["ann"]["n_labels"] == 5
    assert r["annotators"]["ann"]["n_shared"] == 2
    json.dumps(r, allow_nan=False)


def test_spearman_interval_is_deterministic_and_skips_constant_resamples():
    x = [2, 1, 0, -1, -2, 0, 1, 2]
    y = [1, 1, 0, -2, -1, 1, 0, 2]
    a = spearman_interval(x, y, n_boot=300, seed=5)
    assert a == spearman_interval(x, y, n_boot=300, seed=5)
    assert a != spearman_interval(x, y, n_boot=300, seed=6)
    assert 0 < a[1] <= 300
    assert spearman_interval([1, 1, 1], [1, 2, 3], n_boot=10) == (None, 0)


def _csv(tmp_path, lines):
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_labels_round_trip(tmp_path):
    path = _csv(
        tmp_path,
        [
            "sample_id,method,annotator,label",
            "s0,deleaker,ann,no-change",
            "",
            '"s,1",x,b,mitigation-major',
        ],
    )
    labels = read_labels(path)
    assert [(lab.sample_id, lab.line) for lab in labels] == [("s0", 2), ("s,1", 4)]
    assert labels[1].code == 2


@pytest.mark.parametrize(
    "lines, message",
    [
        (["id,method,annotator,label"], "header"),
        ([",".join(HEADER), "s0,deleaker,ann,better"], r":2: unknown label 'better'"),
        (
            [",".join(HEADER), "s0,deleaker,ann,no-change", "s0,deleaker,ann,mitigation-minor"],
            r":3: annotator 'ann' labelled sample 's0' .*first on line 2",
        ),
        ([",".join(HEADER), "s0,deleaker,no-change"], r":2: 3 fields"),
        ([",".join(HEADER), "s0,deleaker, ,no-change"], r":2: empty annotator"),
    ],
)
def test_bad_label_files_name_the_line(tmp_path, lines, message):
    with pytest.raises(ValidationError, match=message):
        read_labels(_csv(tmp_path, lines))


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfsample_id,method,annotator,label\r\ns0,m,a,no-change\r\n")
    assert [(lab.sample_id, lab.label) for lab in read_labels(path)] == [("s0", "no-change")]


def test_missing_file_and_unknown_judge_label(tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):
        read_labels(tmp_path / "nope.csv")
    with pytest.raises(ValidationError, match="'meh'"):
        agreement({"s0": "meh"}, [])
    assert parse_labels([HEADER]) == []


# --- the CLI -----------------------------------------------------------------------------------

_CODES = [2, 1, 0, -1, -2, 1, 0, 2, -1, 0]


def _write(tmp_path, name, labels, *, method="deleaker", judge="gemini/x"):
    samples = [
        Sample(id=f"s{i}", prompt=f"a cat and a cheetah {i}", entities=("cat", "cheetah"), seed=i)
        for i in range(len(labels))
    ]
    verdicts = [
        Verdict(sample_id=s.id, method=method, label=lab, judge=judge)
        if lab
        else Verdict(sample_id=s.id, method=method, label=None, error="timeout")
        for s, lab in zip(samples, labels)
    ]
    run = RunDir(tmp_path / name)
    run.write_manifest({"schema": 1, "method": {"name": method, "config": {}}})
    run.write_samples(samples)
    for verdict in verdicts:
        run.records.append(verdict)
    return run.root


def _label(code):
    return LABELS[2 - code]


def test_agree_cli_human_csv_json(tmp_path, cli):
    run = _write(tmp_path, "run", [_label(c) for c in _CODES[:-1]] + [None])
    rows = [",".join(HEADER)]
    for i, c in enumerate(_CODES):
        rows.append(f"s{i},deleaker,ann,{_label(c)}")
        rows.append(f"s{i},deleaker,bob,{_label(max(-2, c - 1))}")
    rows.append("s0,vanilla,ann,no-change")  # another method: ignored
    labels = _csv(tmp_path, rows)
    code, out, err = cli("agree", "--human", str(labels), "--run", str(run), "--json")
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["n_samples"] == 9  # s9 has a judge error
    judge = _CODES[:-1]
    human = [(c + max(-2, c - 1)) / 2 for c in judge]
    assert report["spearman"] == pytest.approx(spearman(judge, human)[0])
    assert report["kendall_tau_b"] == pytest.approx(kendall_tau_b(judge, human)[0])
    assert report["pairwise_accuracy"] == pytest.approx(pairwise_accuracy(judge, human))
    assert len(report["spearman_ci"]) == 2
    assert report["method"] == "deleaker" and report["reference"]["kind"] == "human"
    assert "Spearman rho" in out


def test_agree_cli_against_an_oracle_run(tmp_path, cli):
    judged = _write(tmp_path, "vlm", [_label(c) for c in _CODES])
    oracle = _write(tmp_path, "oracle", [_label(c) for c in _CODES], judge="oracle/exact")
    code, out, err = cli("agree", "--reference-run", str(oracle), "--run", str(judged), "--json")
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["spearman"] == pytest.approx(1.0)
    assert report["pairwise_accuracy"] == 1.0
    assert report["krippendorff_alpha_ordinal"] is None  # a single reference annotator
    assert report["reference"]["judge"] == ["oracle/exact"]

    other = _write(tmp_path, "other", [_label(c) for c in _CODES], method="vanilla")
    code, _, err = cli("agree", "--reference-run", str(other), "--run", str(judged))
    assert code == 1 and "method 'vanilla'" in err


def test_agree_cli_errors(tmp_path, cli):
    run = _write(tmp_path, "run", [_label(c) for c in _CODES])
    labels = _csv(tmp_path, [",".join(HEADER), "s0,vanilla,ann,no-change"])
    code, _, err = cli("agree", "--human", str(labels), "--run", str(run))
    assert code == 1 and "no labels for method 'deleaker'" in err and "vanilla" in err
    bad = _csv(tmp_path, [",".join(HEADER), "s0,deleaker,ann,great"])
    code, _, err = cli("agree", "--human", str(bad), "--run", str(run))
    assert code == 1 and ":2: unknown label 'great'" in err
    code, _, err = cli("agree", "--human", str(labels), "--run", str(tmp_path / "missing"))
    assert code == 2 and "does not exist" in err  # a path that is no run: the input
    code, _, _ = cli("agree", "--run", str(run))
    assert code == 2  # neither --human nor --reference-run


def _with_images(root, shade, *, backbone):
    """Record a vanilla and a method image per sample (``shade`` makes them differ per run)."""
    run = RunDir(root)
    manifest = run.read_manifest()
    run.write_manifest({**manifest, "backbone": {"name": backbone}})
    for sample in run.samples():
        for role in ("vanilla", "method"):
            run.records.append(
                Generation(
                    sample_id=sample.id,
                    role=role,
                    method="deleaker" if role == "method" else "vanilla",
                    path=f"images/{role}/{sample.id}.png",
                    sha256=f"{shade}{role}{sample.id}".ljust(64, "0"),
                    seed=sample.seed,
                    width=8,
                    height=8,
                )
            )


def test_agree_refuses_a_reference_run_of_other_images(tmp_path, cli):
    judged = _write(tmp_path, "vlm", [_label(c) for c in _CODES])
    oracle = _write(tmp_path, "oracle", [_label(c) for c in _CODES], judge="oracle/exact")
    _with_images(judged, "a", backbone="flux-dev")
    _with_images(oracle, "b", backbone="toy")
    code, _, err = cli("agree", "--reference-run", str(oracle), "--run", str(judged))
    assert code == 1
    assert "judged other images: the vanilla image of sample 's0' differs" in err
    assert "(backbones 'flux-dev' and 'toy')" in err and "slim-eval judge" in err
    same = _write(tmp_path, "same", [_label(c) for c in _CODES], judge="oracle/exact")
    _with_images(same, "a", backbone="flux-dev")
    code, _, err = cli("agree", "--reference-run", str(same), "--run", str(judged))
    assert code == 0, err


def test_agree_says_which_labels_it_left_out(tmp_path, cli):
    run = _write(tmp_path, "run", [_label(c) for c in _CODES[:-1]] + [None])
    rows = [",".join(HEADER)]
    rows += [f"s{i},deleaker,ann,{_label(c)}" for i, c in enumerate(_CODES)]
    rows += ["zz1,deleaker,ann,no-change", "zz2,deleaker,ann,no-change"]
    code, out, err = cli("agree", "--human", str(_csv(tmp_path, rows)), "--run", str(run), "--json")
    assert code == 0, err
    assert (
        "note: 2 reference sample id(s) are not in this run and are left out: 'zz1', 'zz2'" in out
    )
    assert "note: 1 sample(s) have no judge label (a judge error) and are left out: 's9'" in out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["left_out"] == {"unknown_sample_ids": ["zz1", "zz2"], "judge_errors": ["s9"]}
