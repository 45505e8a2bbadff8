#!/usr/bin/env bash
# docs/efficacy.md, end to end (`make efficacy`): build and calibrate the packs, measure them with
# `l2v-hub eval`, put the reports into the doc. Resumable: run it again after an interruption and
# only what is missing is built or asked (the eval answers are kept in each --out folder).
# Hours of CPU on 2 cores; one torch thread per process, two processes side by side.
set -euo pipefail
CACHE=${CACHE:-.cache/l2v_hub}
OUT=${OUT:-.cache/efficacy}
L2V=.venv/bin/l2v-hub
PAIRS=benchmarks/data/pairs-32.jsonl  # 32 of the 288 builtin pairs (every 9th)
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
# SMOLLM2 GEMMA QWEN05B QWEN15B (dequantized float32 folders) and QWEN05B_VLM GEMMA_VLM (wrapped).
eval "$(.venv/bin/python -c "
from pathlib import Path
from l2v_hub.demo.models import model_folders
for k, v in model_folders(Path('$CACHE')).items():
    print(k.upper().replace('.', '').replace('-', '_') + '=' + str(v))")"
.venv/bin/python -m l2v_hub.demo.image_problems "$OUT/images" --count 100 --size 256

pack() {  # SOURCE SOURCE_ID TARGET TARGET_ID NAME: a pack built on 32 pairs, calibrated on TARGET
  [ -f "$OUT/packs/$5/pack.json" ] || $L2V build --llm "$1" --llm-id "$2" --target "$3" \
    --target-id "$4" --pairs $PAIRS --calibrate --out "$OUT/packs/$5" --quiet
}
SMOL_ID=HuggingFaceTB/SmolLM2-135M-Instruct GEMMA_ID=google/gemma-3-270m
Q05_ID=Qwen/Qwen2.5-Coder-0.5B-Instruct Q15_ID=Qwen/Qwen2.5-Coder-1.5B-Instruct

gemma() {
  pack "$SMOLLM2" $SMOL_ID "$GEMMA" $GEMMA_ID smollm2-to-gemma
  pack "$GEMMA" $GEMMA_ID "$GEMMA" $GEMMA_ID gemma-own
  $L2V eval --model "$GEMMA" --model-id $GEMMA_ID --pack "$OUT/packs/smollm2-to-gemma" \
    --pack "$OUT/packs/gemma-own" --problems builtin --limit 100 --prompt direct \
    --max-new-tokens 96 --batch-size 8 --out "$OUT/gemma-direct"
}
qwen() {
  pack "$QWEN15B" $Q15_ID "$QWEN05B" $Q05_ID qwen1.5b-to-qwen0.5b
  pack "$QWEN05B" $Q05_ID "$QWEN05B" $Q05_ID qwen0.5b-own
  # 150 held-out problems (every 4th), every row but the explicit-CoT prompt; then 50 of them
  # (every 12th) with it too: their other rows are kept from the first run, only it is asked.
  # (--limit 300 would keep the 150 and ask 150 more: about twice the CPU time.)
  local q=(--model "$QWEN05B" --model-id $Q05_ID --pack "$OUT/packs/qwen1.5b-to-qwen0.5b"
           --pack "$OUT/packs/qwen0.5b-own" --problems builtin --prompt direct
           --max-new-tokens 256 --batch-size 8 --out "$OUT/qwen-direct")
  $L2V eval "${q[@]}" --limit 150 --no-reference
  mkdir -p "$OUT/qwen-direct-150" && cp "$OUT"/qwen-direct/report.* "$OUT/qwen-direct-150/"
  $L2V eval "${q[@]}" --limit 50
  mkdir -p "$OUT/qwen-direct-50" && cp "$OUT"/qwen-direct/report.* "$OUT/qwen-direct-50/"
  # The transferred pack steering every position, the prompt's too: under `generated` the first
  # answer token, which decides between a bare number and reasoning, comes from an unsteered
  # position. Its own folder, started from the answers above (the unpatched row is kept).
  mkdir -p "$OUT/qwen-direct-all"
  [ -f "$OUT/qwen-direct-all/answers.jsonl" ] || cp "$OUT/qwen-direct/answers.jsonl" "$OUT/qwen-direct-all/"
  $L2V eval --model "$QWEN05B" --model-id $Q05_ID --pack "$OUT/packs/qwen1.5b-to-qwen0.5b" \
    --positions all --problems builtin --limit 50 --prompt direct --no-reference \
    --max-new-tokens 256 --batch-size 8 --out "$OUT/qwen-direct-all"
  # The 0.5B as a LLaVA-OneVision VLM (its exact text decoder), on image problems. No explicit-CoT
  # row: its vision tower is random, so step-by-step text about an unseen image measures nothing
  # (and costs ~18 s an answer here).
  $L2V eval --model "$QWEN05B_VLM" --model-id l2v-hub/llava-onevision-qwen2.5-coder-0.5b-demo \
    --pack "$OUT/packs/qwen1.5b-to-qwen0.5b" --problems "$OUT/images/problems.jsonl" \
    --prompt direct --no-reference --max-new-tokens 128 --batch-size 1 --out "$OUT/qwen-vlm-images"
}
gemma & qwen
wait
.venv/bin/python benchmarks/efficacy_report.py --runs "$OUT"
