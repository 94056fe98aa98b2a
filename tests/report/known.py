"""The known values a hand-written run root holds, which the page must show."""

EVAL_STEPS = (20, 40)
FINAL = {"step": 40, "users": 1234, "recall@20": 0.1523, "ndcg@20": 0.1261}
TIMINGS = {"data": 1.5, "graph": 2.25, "train": 123.45, "eval": 7.5}
