"""Operation counts of the fixed-point SKS per stream pair, and a cycles-per-sample bound.

Captures one batch of each weight layer of the digits CNN (MBGD trajectory, batch 64),
folds it into a q16 SKSFixed for several block sizes q, and reads the measured Jacobi
rotations per core from the golden model's status.  Per pair it reports

* vector multiply-adds (Gram–Schmidt of δ and x, the basis update U ← W C_u, V ← W C_v),
  which a P-lane engine spreads over its lanes;
* scalar work of the core (K, Jacobi rotations, σ and left vectors, unbiased reduction):
  multiply-adds, divisions and square roots, which a scalar unit runs in sequence;

and the bound  cycles/pair ≥ vector/P + scalar (the next pair's Gram–Schmidt needs this
pair's new basis, so the two do not overlap), with a divider of ``--div-cycles`` and a
square root of ``--sqrt-cycles`` cycles.

    python benchmarks/bench_sks_cost.py --lanes 16 --div-cycles 48 --sqrt-cycles 32
"""

from __future__ import annotations

import argparse

import numpy as np

from pymodel.sks_fixed import SKSFixed
from pymodel.training import TrainConfig, capture_stream


def counts(a: int, b: int, r: int, q: int, rot_per_core: float, unbiased: bool) -> dict[str, float]:
    """Operations per pair of one block (q pairs, core n = r + q), from the model's steps."""
    n = r + q
    vec = 0.0
    for dim in (a, b):  # CGS2 per new vector j against r + j columns, norms, normalisation
        vec += sum(2 * 2 * (r + j) * dim + 2 * dim + dim for j in range(q))
    vec += (a + b) * n * r  # U ← W_u C_u[:, :r], V ← W_v C_v[:, :r]
    sc_mac = n * n * q  # K = R_u R_vᵀ
    sc_mac += rot_per_core * (3 * n + 2 + 8 * n + 1)  # α β γ, d'²+g'², t², rotate A and V
    sc_mac += n * n + n * n  # σ'² sums, left vectors A·inv
    sc_div = rot_per_core * 2 + n + 2 * q  # t and c per rotation, 1/σ' per column, 1/‖w‖ per new vector
    sc_sqrt = rot_per_core * 2 + n + 2 * q  # √(d'²+g'²), √(1+t²); σ'; ‖w‖
    if unbiased:  # q reductions of a tail of up to n values (upper bound: the whole core)
        sc_div += q * (1 + n + n * n)  # s_k, (s_k − σ_i)/s_k, v_i v_j / v_0
        sc_sqrt += q * n
        sc_mac += q * 2 * n * n * n  # mixing C_u and C_v columns
    return {"vector_mac": vec / q, "scalar_mac": sc_mac / q, "div": sc_div / q, "sqrt": sc_sqrt / q}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--blocks", default="1,2,4,8,16")
    p.add_argument("--lanes", type=int, default=16)
    p.add_argument("--div-cycles", type=int, default=48)
    p.add_argument("--sqrt-cycles", type=int, default=32)
    p.add_argument("--step", type=int, default=20, help="which MBGD batch to capture")
    p.add_argument("--unbiased", action="store_true")
    a = p.parse_args()
    cfg = TrainConfig(method="mbgd", seed=0)
    print(f"q16 SKS{'-unbiased' if a.unbiased else ''}, rank {a.rank}, digits CNN batch 64 (MBGD batch "
          f"{a.step}), P = {a.lanes} lanes, divider {a.div_cycles} cycles, square root {a.sqrt_cycles} cycles")
    print("| layer | a × b | pairs/sample | q | rotations/core | sweeps/core | vector MAC/pair | scalar MAC/pair "
          "| div/pair | sqrt/pair | cycles/pair ≥ | cycles/sample ≥ |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    total = {}
    for layer in ("conv1", "conv2", "fc"):
        cap = capture_stream(cfg, layer=layer, step=a.step)
        x, d = cap.x, cap.delta
        rows, cols = d.shape[1], x.shape[1]
        r = min(a.rank, rows, cols)
        pairs_per_sample = x.shape[0] / 64
        # the update rule's power-of-two scaling, as training applies it
        from pymodel.update_rules import pow2_exponent
        ex = pow2_exponent(float(np.max(np.abs(x))), 4.0)
        ed = pow2_exponent(float(np.max(np.abs(d))), 1.0)
        for q in (int(v) for v in a.blocks.split(",")):
            est = SKSFixed(rows, cols, r, block=q, unbiased=a.unbiased, fixed="q16")
            est.update(np.ldexp(x, ex), np.ldexp(d, ed))
            st = est.status
            rot = st.rotations / st.cores
            c = counts(rows, cols, r, q, rot, a.unbiased)
            cyc = c["vector_mac"] / a.lanes + c["scalar_mac"] + c["div"] * a.div_cycles + c["sqrt"] * a.sqrt_cycles
            total[layer, q] = cyc * pairs_per_sample
            print(f"| {layer} | {rows} × {cols} | {pairs_per_sample:.0f} | {q} | {rot:.1f} | {st.sweeps / st.cores:.2f} "
                  f"| {c['vector_mac']:.0f} | {c['scalar_mac']:.0f} | {c['div']:.1f} | {c['sqrt']:.1f} | {cyc:.0f} "
                  f"| {cyc * pairs_per_sample:,.0f} |")
    for q in (int(v) for v in a.blocks.split(",")):
        print(f"q = {q}: all layers ≥ {sum(total[l, q] for l in ('conv1', 'conv2', 'fc')):,.0f} cycles per sample")


if __name__ == "__main__":
    main()
