"""What self-supervised training is made of (the loop itself is jobs/train.py).

clips.py (which videos and frames each rank takes), augmentations.py (the two views; their transforms in
temporal.py, spatial.py, overlays.py, viv.py, drawn from draws.py; preview.py draws them), batches.py (one
step's input), losses.py, step.py (one optimiser step), schedule.py (learning rate), experiment.py (the run's
folder and checkpoint), metrics_log.py and plots.py (metrics.jsonl, loss.png), evaluator.py (mAP while
training).
"""
