"""opens_reasoning: the short-answer measure of whether a model reasons (l2v_hub/measure/onset.py)."""

import pytest

from l2v_hub.measure import opens_reasoning

Q = "A pizza costs 12 dollars. Tom buys 3 pizzas and pays with 50 dollars. What is his change?"


@pytest.mark.parametrize("text", [
    "To solve this problem, we need to",
    "First, 3 pizzas cost 3 * 12",
    "First, 3 x 12 = 36 dollars for the pizzas",  # a new number, but with its calculation
    "Let's break it down: Tom buys 3 pizzas",
    "Tom pays 50 dollars for 3 pizzas, so",
    "1. **First, we need to determine how",  # a numbered list
    "1) Tom buys 3 pizzas",
    "To answer to C and C and C",  # reasoning-shaped, unreadable: readability is measured apart
])
def test_reasoning_openings(text: str) -> None:
    assert opens_reasoning(text, Q)


@pytest.mark.parametrize("text", [
    "",
    "   ",
    "14",
    "14 dollars",
    "$14",
    "**14**",
    "-3 is the change",
    "The answer is 14.",
    "answer: 14",
    "The change should be 14 dollars.",
    "Tom gets 14 dollars back. First, 3 pizzas",  # a new number before the first clause ends
    "His change = 14",
    "11 - 34 = 7",  # a bare equation in place of the number asked for
    "10. The first thing we need",  # an answer, then words: only "1." opens a list
    "1.5 dollars",
])
def test_answer_openings(text: str) -> None:
    assert not opens_reasoning(text, Q)


def test_numbers_of_the_question_are_not_results() -> None:
    # 3.5 and 1,200 are numbers of the question: restating them is not answering.
    q = "A rope is 3.5 m long and a road 1,200 m. How many ropes cover the road?"
    assert opens_reasoning("The road is 1,200 m and a rope 3.5 m, so", q)
    assert not opens_reasoning("The road needs 343 ropes", q)
