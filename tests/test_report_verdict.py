"""The report says plainly whether distillation helped, beside the baseline, never "-19 fewer"."""

from tinykd.report.report import kd_verdict


def results(baseline: int, student: int) -> dict:
    return {"baseline": {"errors": baseline}, "student": {"errors": student}}


def test_kd_that_loses_is_called_worse_with_both_counts():
    text = kd_verdict(results(1172, 1191), 10000, by_accuracy=False)
    assert "did not help" in text and "1191 errors" in text and "19 more" in text and "1172" in text
    assert "-19" not in text and "fewer" not in text


def test_kd_that_wins_and_ties():
    assert "helped" in kd_verdict(results(103, 90), 10000, by_accuracy=False)
    assert "13 fewer" in kd_verdict(results(103, 90), 10000, by_accuracy=False)
    assert "no difference" in kd_verdict(results(50, 50), 10000, by_accuracy=False)


def test_accuracy_framing_for_kws():
    text = kd_verdict(results(6, 13), 526, by_accuracy=True)
    assert "did not help" in text and "1.33 percentage points" in text and "less accurate" in text
    assert "97.53 %" in text and "98.86 %" in text
    assert "more accurate" in kd_verdict(results(13, 6), 526, by_accuracy=True)
