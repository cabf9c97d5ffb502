"""Stimulus for the driver co-simulation: rank-1 updates as integers, and their golden words.

Every update is a dict ``{"kind", "u", "v", "cfg"}`` with plain Python ints, so the
same list travels through JSON into the cocotb bench.  The kinds cycle through
random vectors, zero vectors, saturating magnitudes and scales, all sign
combinations (with and without ``negate``), and update-managed configurations
produced by :func:`pymodel.crossbar.pulses.plan_update` from float vectors.
"""

from __future__ import annotations

import numpy as np

from pymodel.crossbar import DriverModel, DriverParams, UpdateConfig, plan_update

KINDS = ("random", "zero", "saturate", "signs", "managed")


def _rand_scale(rng: np.random.Generator, params: DriverParams, max_elem: int) -> int:
    """A scale register value that maps the largest element to ~0.1x .. 3x of its cap."""
    cap = params.row_cap if params.stochastic else params.level_max
    target = float(np.exp(rng.uniform(np.log(0.1), np.log(3.0)))) * cap
    real = target / max(max_elem, 1) * 2.0 ** params.threshold_shift
    lim = (1 << params.scale_bits) - 1
    return int(min(max(round(real), 0), lim))


def make_update(kind: str, params: DriverParams, rng: np.random.Generator) -> dict:
    """One update of ``kind`` (see :data:`KINDS`)."""
    f = params.state
    a, b = params.rows, params.cols
    blf = (1 << params.bl_bits) - 1
    top = (1 << params.scale_bits) - 1
    if kind == "random":
        u = rng.integers(f.min_int, f.max_int + 1, a)
        v = rng.integers(f.min_int, f.max_int + 1, b)
        # occasionally an illegal BL (0 or > bl_max) to check the clamp
        bl = int(rng.choice([0, blf, int(rng.integers(1, params.bl_max + 1))], p=[0.1, 0.1, 0.8]))
        cfg = UpdateConfig(_rand_scale(rng, params, int(np.abs(u).max())),
                           _rand_scale(rng, params, int(np.abs(v).max())), bl, bool(rng.integers(2)))
    elif kind == "zero":
        which = int(rng.integers(3))
        u = np.zeros(a, np.int64) if which != 1 else rng.integers(f.min_int, f.max_int + 1, a)
        v = np.zeros(b, np.int64) if which != 0 else rng.integers(f.min_int, f.max_int + 1, b)
        cfg = UpdateConfig(int(rng.integers(0, top + 1)), int(rng.integers(0, top + 1)),
                           int(rng.integers(1, params.bl_max + 1)), bool(rng.integers(2)))
    elif kind == "saturate":
        u = rng.choice([f.min_int, f.max_int, f.min_int + 1, 0], a)
        v = rng.choice([f.min_int, f.max_int, -1, 1], b)
        cfg = UpdateConfig(top, top, params.bl_max, bool(rng.integers(2)))
    elif kind == "signs":
        mag = int(rng.integers(1, f.max_int + 1))
        u = rng.choice([-mag, mag], a)
        v = rng.choice([-mag, mag], b)
        u[: min(a, 2)] = [mag, -mag][: min(a, 2)]
        v[: min(b, 2)] = [mag, -mag][: min(b, 2)]
        cfg = UpdateConfig(_rand_scale(rng, params, mag), _rand_scale(rng, params, mag),
                           int(rng.integers(1, params.bl_max + 1)), bool(rng.integers(2)))
    elif kind == "managed":
        uf, vf = rng.standard_normal(a), rng.standard_normal(b)
        lr = float(np.exp(rng.uniform(np.log(1e-4), np.log(0.2))))
        bl = None if rng.integers(2) else int(rng.integers(1, params.bl_max + 1))
        plan = plan_update(uf, vf, lr, 0.001, params, bl=bl)
        u, v, cfg = plan.u_int, plan.v_int, plan.cfg
    else:
        raise ValueError(f"unknown update kind {kind!r}; choose one of {KINDS}")
    return {"kind": kind, "u": [int(x) for x in u], "v": [int(x) for x in v], "cfg": cfg.to_dict()}


def make_updates(params: DriverParams, count: int, seed: int) -> list[dict]:
    """``count`` updates, kinds in rotation (random first), deterministic under ``seed``."""
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"updates must be a positive integer, not {count!r}")
    rng = np.random.default_rng([int(seed), 0xD7])
    return [make_update(KINDS[i % len(KINDS)], params, rng) for i in range(int(count))]


def config_of(update: dict) -> UpdateConfig:
    c = update["cfg"]
    return UpdateConfig(int(c["row_scale"]), int(c["col_scale"]), int(c["bl"]), bool(c["negate"]))


def golden_words(params: DriverParams, updates: list[dict]) -> list[list[int]]:
    """The expected output words of every update, from a freshly reset golden driver."""
    model = DriverModel(params)
    return [model.run(np.array(up["u"], np.int64), np.array(up["v"], np.int64), config_of(up)).words(params)
            for up in updates]


def compare_words(params: DriverParams, updates: list[dict], expected: list[list[int]], got: list[int],
                  max_reported: int = 8, reproduce: str = "") -> dict:
    """Scoreboard (:class:`testbench.scoreboard.Scoreboard`): received slot words vs the golden ones, in order.

    Every missing word and every surplus word counts as a mismatch.  ``first_mismatches``
    names the update, its kind, the slot and every differing field (RTL vs golden);
    ``mismatch_details`` the same as one line each, with the command that reproduces the run.
    """
    from pymodel.crossbar.pulses import unpack_fields
    from testbench.scoreboard import Scoreboard

    fields = params.word_fields()
    flat = [(ui, t, w) for ui, ws in enumerate(expected) for t, w in enumerate(ws)]
    sb = Scoreboard(reproduce=reproduce, max_details=max_reported)
    details = []
    for (ui, t, want), word in zip(flat, got):
        if not sb.check(f"update {ui} ({updates[ui]['kind']})", f"slot {t} word", word, want) \
                and len(details) < max_reported:
            g, w = unpack_fields(fields, word), unpack_fields(fields, want)
            details.append({"update": ui, "kind": updates[ui]["kind"], "slot": t,
                            "fields": {k: {"rtl": hex(g[k]), "golden": hex(w[k])} for k in g if g[k] != w[k]}})
    for ui, t, want in flat[len(got):]:
        sb.fail(f"update {ui} ({updates[ui]['kind']})", f"slot {t} word", None, want, "missing word")
    for j, word in enumerate(got[len(flat):]):
        sb.fail("after the last update", f"surplus word {j}", word, None, "surplus word")
    rep = sb.report()
    return {"words_expected": len(flat), "words_compared": min(len(got), len(flat)),
            "missing_words": max(len(flat) - len(got), 0), "extra_words": max(len(got) - len(flat), 0),
            "mismatches": rep["mismatches"], "first_mismatches": details,
            "mismatch_details": rep["mismatch_details"], "scoreboard": sb}
