#!/usr/bin/env python3
"""An independent reference of traincb's EarlyStopping rules, one monitor or several.

Written from the rule text of docs/early-stopping-rules.md ("The decision at the end of each
epoch" and "Several monitors"), not from the C++ code: it shares no code with traincb and uses
only the Python standard library. Python floats are IEEE-754 doubles, so `v + d < ref` is the
same arithmetic as in C++.

    multi_monitor_reference.py --write   # (re)writes early-stopping-multi-vectors.json from CASES
    multi_monitor_reference.py --check   # recomputes every vector of both vector files; exit 1 on
                                         # any difference (a ctest runs this)

The cases of the multi-monitor file are defined below (CASES), each with a "why" that derives its
expected outcome by hand; --write computes "expected" with this reference, and --check verifies
that the hand derivations and this reference agree with the stored file. --check also runs every
case of early-stopping-vectors.json (the single-monitor cases), so the reference is itself checked
against the vectors written before it.
"""

import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SINGLE_FILE = os.path.join(HERE, "early-stopping-vectors.json")
MULTI_FILE = os.path.join(HERE, "early-stopping-multi-vectors.json")

# "Mode::Auto is resolved from the monitor name without one val_ prefix".
MIN_NAMES = {"mse", "mae", "mape", "msle", "rmse", "mean_squared_error", "mean_absolute_error",
             "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
             "root_mean_squared_error", "hinge", "squared_hinge", "categorical_hinge", "logcosh",
             "kl_divergence", "poisson"}
MAX_NAMES = {"acc", "precision", "recall", "auc", "roc_auc", "prc", "f1", "f1_score",
             "fbeta_score", "r2", "r2_score", "iou", "mean_iou"}


class Rejected(Exception):
    """A configuration or a run the rules reject; args[0] is the vector's error kind."""


def auto_direction(key):
    name = key[4:] if key.startswith("val_") else key
    if name == "loss" or name.endswith(("loss", "crossentropy", "_error")) or name in MIN_NAMES:
        return "min"
    if name.endswith("accuracy") or name in MAX_NAMES:
        return "max"
    return None


def number(x):
    """A JSON number of the vectors: a number, or "NaN" / "Infinity" / "-Infinity"."""
    if isinstance(x, str):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[x]
    if isinstance(x, bool):
        raise TypeError("a boolean is not a number")
    return float(x)


def as_json_number(v):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def better(direction, v, ref, d):
    # Exactly this operand order; every comparison with NaN is False in Python too.
    return v + d < ref if direction == "min" else v - d > ref


def worse(direction, v, ref):
    return v > ref if direction == "min" else v < ref


def monitors_of(config):
    """The list of (key, mode, min_delta), validated as the Options sections say."""
    def valid_delta(d):
        return not math.isnan(d) and not math.isinf(d) and d >= 0

    modes = ("auto", "min", "max")
    if config.get("monitors"):
        # "monitor, mode and min_delta must then keep their defaults"
        if config.get("monitor", "val_loss") != "val_loss":
            raise Rejected("invalid_argument")
        if config.get("mode", "auto") != "auto" or number(config.get("min_delta", 0)) != 0:
            raise Rejected("invalid_argument")
        seen = set()
        out = []
        for m in config["monitors"]:
            key = m.get("key", "")
            mode = m.get("mode", "auto")
            delta = number(m.get("min_delta", 0))
            if key == "" or key in seen or mode not in modes or not valid_delta(delta):
                raise Rejected("invalid_argument")
            seen.add(key)
            out.append((key, mode, delta))
        return out
    key = config.get("monitor", "val_loss")
    mode = config.get("mode", "auto")
    delta = number(config.get("min_delta", 0))
    if key == "" or mode not in modes or not valid_delta(delta):
        raise Rejected("invalid_argument")
    return [(key, mode, delta)]


def replay(vector):
    """The expected outcome of one vector (the fields of traincb-replay's output)."""
    config = vector["config"]
    try:
        monitors = monitors_of(config)
        patience = config.get("patience", 0)
        start = config.get("start_from_epoch", 0)
        delta_mode = config.get("min_delta_mode", "abs")
        if patience < 0 or start < 0 or delta_mode not in ("abs", "absolute", "rel", "relative"):
            raise Rejected("invalid_argument")
        optional = {}
        for name in ("baseline", "stopping_threshold", "divergence_threshold"):
            if name in config:
                optional[name] = number(config[name])
                if math.isnan(optional[name]):
                    raise Rejected("invalid_argument")
        relative = delta_mode in ("rel", "relative")
        check_finite = config.get("check_finite", True)
        strict = config.get("strict", True)
        restore = config.get("restore_best_weights", False)

        directions = []
        for key, mode, _ in monitors:
            d = mode if mode != "auto" else auto_direction(key)
            if d is None:
                raise Rejected("cannot_infer_mode")
            directions.append(d)

        n = len(monitors)
        best = [None] * n
        best_epoch = [None] * n
        wait = [0] * n
        stopped_epoch = None
        reason = None
        epochs_run = 0
        epoch = vector.get("initial_epoch", 0)
        for logs in vector["history"]:
            epochs_run += 1
            here = epoch
            epoch += 1
            # Step 1: each monitor's value, or skipped.
            values = []
            for key, _, _ in monitors:
                if key in logs:
                    values.append(number(logs[key]))
                    continue
                has_validation = any(k.startswith("val_") for k in logs)
                if key.startswith("val_") and not has_validation:
                    values.append(None)  # an epoch without validation: skipped silently
                elif strict:
                    raise Rejected("missing_key")  # before anything changes
                else:
                    values.append(None)  # a warning, and skipped
            if all(v is None for v in values):
                continue
            # Step 2.
            if here < start:
                continue
            # Step 3 (steps 3 to 5 of the single-monitor rule, per monitor).
            for i, v in enumerate(values):
                if v is None:
                    continue
                margin = monitors[i][2]

                def d_for(ref, m=margin):
                    return m * abs(ref) if relative else m

                improved = not math.isnan(v) and (best[i] is None or
                                                  better(directions[i], v, best[i], d_for(best[i])))
                if improved:
                    best[i] = v
                    best_epoch[i] = here
                beats = True
                if i == 0 and "baseline" in optional:
                    b = optional["baseline"]
                    beats = not math.isnan(v) and better(directions[0], v, b, d_for(b))
                wait[i] = 0 if (improved and beats) else wait[i] + 1
            # Step 5: the first that holds.
            v1 = values[0]
            if check_finite and any(v is not None and not math.isfinite(v) for v in values):
                reason = "non_finite"
            elif (v1 is not None and "stopping_threshold" in optional and
                  better(directions[0], v1, optional["stopping_threshold"], 0.0)):
                reason = "stopping_threshold"
            elif (v1 is not None and "divergence_threshold" in optional and
                  worse(directions[0], v1, optional["divergence_threshold"])):
                reason = "divergence_threshold"
            elif all(w >= max(patience, 1) for w in wait):
                reason = "patience"
            if reason is not None:
                stopped_epoch = here
                break
    except Rejected as e:
        return {"error": e.args[0]}

    out = {
        "mode": directions[0],
        "stopped_epoch": stopped_epoch,
        "stop_reason": reason,
        "best_epoch": best_epoch[0],
        "best": None if best[0] is None else as_json_number(best[0]),
        "wait": min(wait),
        "epochs_run": epochs_run,
        "restored_from_epoch": best_epoch[0] if restore else None,
    }
    if n > 1:
        out["monitors"] = [{"key": monitors[i][0], "mode": directions[i], "best_epoch": best_epoch[i],
                            "best": None if best[i] is None else as_json_number(best[i]),
                            "wait": wait[i]} for i in range(n)]
    return out


def h(**columns):
    """History rows from equal-length columns; None in a column means "not logged that epoch"."""
    lengths = {len(c) for c in columns.values()}
    assert len(lengths) == 1, columns
    rows = []
    for i in range(lengths.pop()):
        row = {}
        for key, col in columns.items():
            if col[i] is not None:
                row[key] = col[i]
        rows.append(row)
    return rows


SRC = "multi-monitor rule"

# Each case: name, config, history (and initial_epoch), and "why": the hand derivation of the
# expected outcome from the rule text. --check fails if this reference disagrees with the file.
CASES = [
    {
        "name": "one_stalls_other_improves_no_stop",
        "why": "val_loss is best at epoch 1 and stalls (wait_1 reaches 6), but val_accuracy improves "
               "every epoch (wait_2 = 0): not every monitor is exhausted, so no stop; wait() = 0.",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "val_accuracy"}], "patience": 2},
        "history": h(val_loss=[1.0, 0.8, 0.85, 0.9, 0.9, 0.95, 1.0, 1.1],
                     val_accuracy=[0.5, 0.6, 0.62, 0.64, 0.66, 0.68, 0.7, 0.72]),
    },
    {
        "name": "both_stall_stop_when_the_last_is_exhausted",
        "why": "val_loss best at epoch 2 (wait_1 = 3 at epoch 5); val_accuracy best at epoch 4 "
               "(wait_2 = 3 at epoch 7). Both exhausted first at epoch 7: stop there. The primary's "
               "best_epoch (2) differs from the secondary's (4); wait() = min(5, 3) = 3.",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "val_accuracy"}], "patience": 3},
        "history": h(val_loss=[1.0, 0.9, 0.7, 0.75, 0.8, 0.8, 0.9, 0.95, 1.0],
                     val_accuracy=[0.5, 0.6, 0.7, 0.71, 0.75, 0.74, 0.74, 0.73, 0.9]),
    },
    {
        "name": "stalls_of_different_epochs_do_not_add_up",
        "why": "patience 2. val_loss stalls at epochs 1-2 (wait_1 = 2) while val_accuracy improves; "
               "val_loss then improves at epoch 3 (wait_1 = 0) while val_accuracy stalls at 3-4 "
               "(wait_2 = 2 at epoch 4, but wait_1 = 1). At epoch 5 both stall: wait_1 = 2, "
               "wait_2 = 3: stop at 5.",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "val_accuracy"}], "patience": 2},
        "history": h(val_loss=[1.0, 1.0, 1.1, 0.9, 0.95, 0.95, 0.5],
                     val_accuracy=[0.5, 0.6, 0.7, 0.7, 0.65, 0.7, 0.9]),
    },
    {
        "name": "min_delta_per_monitor_both_below_their_margin_stop",
        "why": "val_loss (min_delta 0.05) falls by 0.01 per epoch and val_mae (min_delta 0.01) by "
               "0.001: neither exceeds its own margin after epoch 0, so both waits reach 2 at "
               "epoch 2: stop; bests stay at epoch 0.",
        "config": {"monitors": [{"key": "val_loss", "min_delta": 0.05},
                                {"key": "val_mae", "min_delta": 0.01}], "patience": 2},
        "history": h(val_loss=[1.0, 0.99, 0.98, 0.97, 0.96],
                     val_mae=[0.5, 0.499, 0.498, 0.497, 0.496]),
    },
    {
        "name": "min_delta_per_monitor_secondary_without_margin_continues",
        "why": "As the previous case, but val_mae has min_delta 0: its 0.001 steps are improvements "
               "(wait_2 stays 0), so although val_loss is exhausted from epoch 2 the run is not "
               "stopped.",
        "config": {"monitors": [{"key": "val_loss", "min_delta": 0.05},
                                {"key": "val_mae"}], "patience": 2},
        "history": h(val_loss=[1.0, 0.99, 0.98, 0.97, 0.96],
                     val_mae=[0.5, 0.499, 0.498, 0.497, 0.496]),
    },
    {
        "name": "max_primary_and_min_secondary_explicit_modes",
        "why": "Primary val_f (explicit max) is best at 0.8 at epoch 1; secondary val_err (explicit "
               "min) is best at 0.2 at epoch 3. patience 2: wait_1 = 2 at epoch 3, wait_2 = 2 at "
               "epoch 5: stop at 5 with mode max, best 0.8 at epoch 1.",
        "config": {"monitors": [{"key": "val_f", "mode": "max"}, {"key": "val_err", "mode": "min"}],
                   "patience": 2},
        "history": h(val_f=[0.5, 0.8, 0.7, 0.75, 0.79, 0.6],
                     val_err=[0.5, 0.4, 0.3, 0.2, 0.25, 0.2]),
    },
    {
        "name": "auto_modes_resolved_per_key",
        "why": "Auto: val_accuracy is max, loss is min. val_accuracy best 0.9 at epoch 2; loss "
               "best 0.3 at epoch 1 (a rise of loss is not an improvement in min mode). patience "
               "1: wait_2 = 1 at epoch 2, wait_1 = 1 at epoch 3: stop at 3.",
        "config": {"monitors": [{"key": "val_accuracy"}, {"key": "loss"}], "patience": 1},
        "history": h(val_accuracy=[0.5, 0.7, 0.9, 0.85, 0.95],
                     loss=[0.5, 0.3, 0.4, 0.5, 0.1]),
    },
    {
        "name": "restore_best_weights_follows_the_primary",
        "why": "restore_best_weights: the primary val_loss is best at epoch 1, the secondary "
               "val_accuracy at epoch 4. patience 2: wait_1 = 2 from epoch 3, wait_2 = 2 at epoch "
               "6: stop at 6 and restore epoch 1 (the primary's), not 4.",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "val_accuracy"}], "patience": 2,
                   "restore_best_weights": True},
        "history": h(val_loss=[1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
                     val_accuracy=[0.5, 0.6, 0.7, 0.8, 0.9, 0.85, 0.88]),
    },
    {
        "name": "nan_in_a_secondary_stops_with_check_finite",
        "why": "check_finite (default) applies to every monitor: val_accuracy is NaN at epoch 2, so "
               "training stops there (non_finite) although val_loss improves that epoch; the "
               "primary's best is that epoch's 0.7, and the NaN is not the secondary's best.",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "val_accuracy"}], "patience": 5},
        "history": h(val_loss=[1.0, 0.9, 0.7, 0.6],
                     val_accuracy=[0.5, 0.6, "NaN", 0.7]),
    },
    {
        "name": "nan_in_a_secondary_without_check_finite_is_no_improvement",
        "why": "check_finite false: the secondary's NaN at epochs 2 and 3 is no improvement "
               "(wait_2 = 2 at epoch 3); val_loss is best at epoch 1 (wait_1 = 2 at epoch 3). "
               "patience 2: both exhausted at epoch 3: stop, secondary best 0.6 at epoch 1.",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "val_accuracy"}], "patience": 2,
                   "check_finite": False},
        "history": h(val_loss=[1.0, 0.9, 0.95, 0.95, 0.5],
                     val_accuracy=[0.5, 0.6, "NaN", "NaN", 0.9]),
    },
    {
        "name": "negative_infinity_can_be_a_secondary_best_without_check_finite",
        "why": "check_finite false: -inf is better than 1.5 in min mode, so the secondary loss "
               "has best -inf at epoch 1 and can never improve again; val_loss stalls from epoch "
               "0. patience 2: wait_1 = 2 at epoch 2, wait_2 = 2 at epoch 3: stop at 3.",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "loss"}], "patience": 2,
                   "check_finite": False},
        "history": h(val_loss=[1.0, 1.0, 1.0, 1.0], loss=[1.5, "-Infinity", 1.0, 0.5]),
    },
    {
        "name": "missing_secondary_key_under_strict_is_an_error",
        "why": "strict (default): the secondary val_acc is never logged, and each epoch has "
               "validation keys, so it is missing where it should exist: an error.",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "val_acc"}], "patience": 2},
        "history": h(val_loss=[1.0, 0.9], val_accuracy=[0.5, 0.6]),
        "expected_error": "missing_key",
    },
    {
        "name": "val_secondary_skipped_on_epochs_without_validation",
        "why": "Validation every other epoch (no val_* key on even epochs): val_loss is skipped "
               "there and counts only its own epochs. loss is best at epoch 0 (wait_1 = 2 at epoch "
               "2); val_loss improves at 1 and 3 and stalls at 5 and 7 (wait_2 = 2 at epoch 7): "
               "stop at 7, a validation epoch; at epoch 6 wait_2 is still 1.",
        "config": {"monitors": [{"key": "loss"}, {"key": "val_loss"}], "patience": 2},
        "history": h(loss=[0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6],
                     val_loss=[None, 1.0, None, 0.8, None, 0.9, None, 0.85, None]),
    },
    {
        "name": "baseline_applies_to_the_primary_only",
        "why": "baseline 0.5 on the primary val_loss, which improves but never beats it, so wait_1 "
               "grows every epoch. The secondary loss is never below 0.5 either, but the baseline "
               "is not its business: it improves until epoch 3 (wait_2 = 0), then stalls; patience "
               "2: wait_2 = 2 at epoch 5 (wait_1 = 6): stop at 5. Were the baseline applied to "
               "loss too, both waits would be 2 at epoch 1. The primary's best is 0.7 at epoch 5.",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "loss"}], "patience": 2,
                   "baseline": 0.5},
        "history": h(val_loss=[1.0, 0.95, 0.9, 0.8, 0.75, 0.7, 0.65],
                     loss=[2.0, 1.8, 1.6, 1.4, 1.5, 1.5, 1.0]),
    },
    {
        "name": "stopping_threshold_applies_to_the_primary_only",
        "why": "stopping_threshold 0.3: the secondary loss drops below it at epoch 1 without "
               "effect; the primary val_loss drops below it at epoch 3: stop there "
               "(stopping_threshold).",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "loss"}], "patience": 10,
                   "stopping_threshold": 0.3},
        "history": h(val_loss=[1.0, 0.8, 0.5, 0.25, 0.2], loss=[0.9, 0.2, 0.1, 0.05, 0.01]),
    },
    {
        "name": "divergence_threshold_applies_to_the_primary_only",
        "why": "divergence_threshold 2.0: the secondary loss exceeds it at epoch 1 without effect; "
               "the primary val_loss exceeds it at epoch 3: stop there (divergence_threshold).",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "loss"}], "patience": 10,
                   "divergence_threshold": 2.0},
        "history": h(val_loss=[1.0, 1.5, 1.9, 2.5, 0.5], loss=[1.0, 3.0, 0.5, 0.4, 0.3]),
    },
    {
        "name": "start_from_epoch_applies_to_every_monitor",
        "why": "start_from_epoch 2: epochs 0-1 change nothing (their 0.1 and 0.99 are not bests). "
               "From epoch 2: val_loss best 0.5 at 2, val_accuracy best 0.6 at 2, neither improves "
               "afterwards; patience 1: both waits reach 1 at epoch 3: stop.",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "val_accuracy"}], "patience": 1,
                   "start_from_epoch": 2},
        "history": h(val_loss=[0.1, 0.2, 0.5, 0.6, 0.4],
                     val_accuracy=[0.99, 0.9, 0.6, 0.5, 0.7]),
    },
    {
        "name": "relative_min_delta_per_monitor",
        "why": "min_delta_mode rel, each monitor with its own min_delta times abs(its best): "
               "val_loss needs 10%: 0.95 + 0.1 < 1.0 and 0.92 + 0.1 < 1.0 fail (wait_1 = 1 at "
               "epoch 1); val_mae needs 1%: 0.49 + 0.005 < 0.5 holds at epoch 1, 0.486 + 0.0049 "
               "< 0.49 fails at epoch 2 (wait_2 = 1). patience 1: stop at 2.",
        "config": {"monitors": [{"key": "val_loss", "min_delta": 0.1},
                                {"key": "val_mae", "min_delta": 0.01}],
                   "patience": 1, "min_delta_mode": "rel"},
        "history": h(val_loss=[1.0, 0.95, 0.92, 0.5], val_mae=[0.5, 0.49, 0.486, 0.1]),
    },
    {
        "name": "three_monitors_the_last_one_keeps_it_going",
        "why": "patience 1. val_loss stalls from epoch 1, val_accuracy from epoch 2, val_auc "
               "improves until epoch 4 and stalls at 5: all three waits >= 1 first at epoch 5.",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "val_accuracy"}, {"key": "val_auc"}],
                   "patience": 1},
        "history": h(val_loss=[1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 0.1],
                     val_accuracy=[0.5, 0.6, 0.6, 0.55, 0.5, 0.5, 0.9],
                     val_auc=[0.5, 0.6, 0.7, 0.8, 0.9, 0.85, 0.95]),
    },
    {
        "name": "resumed_run_counts_absolute_epochs",
        "why": "initial_epoch 4 and start_from_epoch 5: epoch 4 is ignored; from epoch 5 val_loss "
               "best 0.6 at 5, val_accuracy best 0.7 at 6; patience 2: wait_1 = 2 at 7, wait_2 = 2 "
               "at 8: stop at absolute epoch 8 after 5 rows.",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "val_accuracy"}], "patience": 2,
                   "start_from_epoch": 5},
        "initial_epoch": 4,
        "history": h(val_loss=[0.1, 0.6, 0.7, 0.65, 0.7, 0.1],
                     val_accuracy=[0.9, 0.6, 0.7, 0.7, 0.69, 0.9]),
    },
    {
        "name": "a_list_of_one_is_the_single_monitor",
        "why": "monitors with one entry is exactly monitor = val_loss, mode min, min_delta 0.1: "
               "best 1.0 at epoch 0 (0.95 and 0.91 are within the margin), wait 2 at epoch 2 with "
               "patience 2: stop; and no per-monitor list in the output.",
        "config": {"monitors": [{"key": "val_loss", "mode": "min", "min_delta": 0.1}], "patience": 2},
        "history": h(val_loss=[1.0, 0.95, 0.91, 0.5]),
    },
    {
        "name": "auto_unresolvable_secondary",
        "why": "Auto on the secondary 'val_score' is neither in the min nor the max list: rejected.",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "val_score"}]},
        "history": h(val_loss=[1.0], val_score=[0.5]),
        "expected_error": "cannot_infer_mode",
    },
    {
        "name": "duplicate_key_rejected",
        "why": "A key listed twice: rejected at construction.",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "val_loss", "mode": "min"}]},
        "history": h(val_loss=[1.0]),
        "expected_error": "invalid_argument",
    },
    {
        "name": "empty_key_rejected",
        "why": "An empty key: rejected at construction.",
        "config": {"monitors": [{"key": "val_loss"}, {"key": ""}]},
        "history": h(val_loss=[1.0]),
        "expected_error": "invalid_argument",
    },
    {
        "name": "negative_min_delta_of_a_monitor_rejected",
        "why": "A negative min_delta on the secondary: rejected at construction.",
        "config": {"monitors": [{"key": "val_loss"}, {"key": "val_accuracy", "min_delta": -0.01}]},
        "history": h(val_loss=[1.0], val_accuracy=[0.5]),
        "expected_error": "invalid_argument",
    },
    {
        "name": "top_level_mode_with_monitors_rejected",
        "why": "mode is per monitor: a top-level mode with monitors is rejected.",
        "config": {"mode": "min", "monitors": [{"key": "val_loss"}, {"key": "val_mae"}]},
        "history": h(val_loss=[1.0], val_mae=[0.5]),
        "expected_error": "invalid_argument",
    },
    {
        "name": "top_level_min_delta_with_monitors_rejected",
        "why": "min_delta is per monitor: a top-level min_delta with monitors is rejected.",
        "config": {"min_delta": 0.1, "monitors": [{"key": "val_loss"}, {"key": "val_mae"}]},
        "history": h(val_loss=[1.0], val_mae=[0.5]),
        "expected_error": "invalid_argument",
    },
]


def build_multi():
    vectors = []
    for case in CASES:
        v = {"name": case["name"], "source": SRC, "why": case["why"], "config": case["config"]}
        if "initial_epoch" in case:
            v["initial_epoch"] = case["initial_epoch"]
        v["history"] = case["history"]
        v["expected"] = replay(v)
        if "expected_error" in case and v["expected"] != {"error": case["expected_error"]}:
            raise SystemExit(f"{case['name']}: the reference gives {v['expected']}, "
                             f"the case expects the error {case['expected_error']}")
        vectors.append(v)
    return {"vectors": vectors}


def check_file(path, vectors):
    bad = 0
    for v in vectors:
        got = replay(v)
        if got != v["expected"]:
            bad += 1
            print(f"{os.path.basename(path)}: {v['name']}: expected {json.dumps(v['expected'])}, "
                  f"the reference gives {json.dumps(got)}")
    return bad


def main(argv):
    if argv[1:] == ["--write"]:
        with open(MULTI_FILE, "w", encoding="utf-8", newline="\n") as f:
            json.dump(build_multi(), f, indent=1)
            f.write("\n")
        return 0
    if argv[1:] == ["--check"]:
        bad = 0
        with open(SINGLE_FILE, encoding="utf-8") as f:
            single = json.load(f)["vectors"]
        bad += check_file(SINGLE_FILE, single)
        with open(MULTI_FILE, encoding="utf-8") as f:
            multi = json.load(f)
        bad += check_file(MULTI_FILE, multi["vectors"])
        total = len(single) + len(multi["vectors"])
        print(f"{total - bad} of {total} vectors agree with the reference")
        # The stored cases are exactly CASES (no case edited in the file only, or in CASES only).
        if multi != build_multi():
            bad += 1
            print(f"{os.path.basename(MULTI_FILE)} differs from the cases of this script; run --write")
        return 1 if bad else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
