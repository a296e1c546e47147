from inference.engine.parser import parse_output


def test_tiny_model_format_without_opening_think():
    raw = "Step 1 [deduction]: 37 + 5 = 42\nStep 2 [deduction]: 42 - 8 = 34\n</think>\n\nThe answer is 34."
    parsed = parse_output(raw)
    assert parsed.think_closed
    assert [s.text for s in parsed.steps] == ["37 + 5 = 42", "42 - 8 = 34"]
    assert [s.strategy for s in parsed.steps] == ["deduction", "deduction"]
    assert all(s.strategy_source == "explicit" for s in parsed.steps)
    assert parsed.answer == "The answer is 34."
    assert parsed.answer_value == 34


def test_explicit_think_block_and_boxed_answer():
    raw = "<think>\nStep 1 [induction]: 7 - 3 = 4\n</think>\nSo \\boxed{11}"
    parsed = parse_output(raw)
    assert len(parsed.steps) == 1 and parsed.steps[0].strategy == "induction"
    assert parsed.answer_value == 11


def test_r1_free_paragraphs_get_cue_strategies():
    raw = (
        "Okay, the numbers grow by the same amount each time, a pattern.\n\n"
        "Therefore the next term is 15 + 4 = 19.\n\n"
        "Wait, let me recheck: 15 + 4 = 19, yes.\n"
        "</think>\n\nThe next number is 19."
    )
    parsed = parse_output(raw)
    assert [s.strategy for s in parsed.steps] == ["induction", "deduction", "deduction"]
    assert [s.self_correction for s in parsed.steps] == [False, False, True]
    assert parsed.answer_value == 19


def test_unclosed_think_is_all_reasoning():
    parsed = parse_output("Step 1 [deduction]: 3 + 4 = 7\nStep 2 [deduction]: 7 + ")
    assert not parsed.think_closed
    assert parsed.answer == "" and parsed.answer_value is None
    assert len(parsed.steps) == 2


def test_plain_answer_without_reasoning():
    parsed = parse_output("The answer is 12.")
    assert parsed.steps == [] and parsed.answer_value == 12


def test_unknown_strategy_tag_falls_back_to_cues():
    parsed = parse_output("Step 1 [guess]: so 2 + 2 = 4\n</think>\n4")
    assert parsed.steps[0].strategy == "deduction"
    assert parsed.steps[0].strategy_source == "cue"
