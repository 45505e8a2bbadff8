"""What steering does to a model, measured: neutral-text perplexity, answers to problems (accuracy,
step-by-step share, length, readability) and the random-direction control. One implementation,
used by calibration (``l2v_hub.calibrate``) and by the benchmarks.
"""

from .answers import (
    Answer,
    answer_problems,
    final_number,
    is_step_by_step,
    non_ascii_share,
    score,
    summarize,
)
from .control import random_directions
from .onset import opens_reasoning
from .problems import Problem, ProblemsError, builtin_problems, load_problems
from .prompts import REGIMES, prompt_ids, question_text
from .text import neutral_text, perplexity

__all__ = [
    "REGIMES",
    "Answer",
    "Problem",
    "ProblemsError",
    "answer_problems",
    "builtin_problems",
    "final_number",
    "is_step_by_step",
    "load_problems",
    "neutral_text",
    "non_ascii_share",
    "opens_reasoning",
    "perplexity",
    "prompt_ids",
    "question_text",
    "random_directions",
    "score",
    "summarize",
]
