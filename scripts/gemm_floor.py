"""The GEMM floor of a `vit profile --json` report, for scripts/bench-vs-pytorch.sh and
scripts/bench-vs-onnxruntime.sh (imported, not run).

`vit profile` times each of the model's linear-layer GEMM shapes alone, through the same
matmulForward / matmulBackward a step calls, in rounds between training steps
(`gemm_shapes`: per shape its kind, calls per step and median ms a call), and each block's
attention GEMMs alone, the per-(image, head) sgemm calls attentionForward / attentionBackward
make without the softmax between them (`attention_gemms`: per use its kind, calls per step and
median ms over the whole batch). Their sum over a batch is what vit's GEMMs cost on this
machine with nothing else running: a lower bound on vit's time for that batch, since every
matrix multiply goes through OpenBLAS. A peer's whole time for the same batch over that floor is
then the most vit could be ahead of the peer, however fast everything between the GEMMs
became. A class-token model runs its last block's proj, fc1 and fc2 on the pooled tokens' rows
only, and `vit profile` leaves those small calls out of its table, so they count for nothing,
which is generous to vit.

The rounds split each shape's rows (attention: its (image, head) pairs) across the threads, as
a training step and a batch-1 inference do. An inference batch of several images runs by image
chunks instead, each worker a chunk through the whole network on one thread, whose GEMMs run on
cache-warm rows and wait for no other thread; the floor does not bound that path, so its line
says "op by op".
"""


def gemm_floor_ms(report, kinds):
    """Milliseconds a batch of `report`'s GEMMs of the given kinds ("forward", "backward") take
    when timed alone (linear layers and attention), or None when the profile ran no GEMM rounds."""
    shapes = [s for s in report.get("gemm_shapes") or [] if s["kind"] in kinds]
    if not shapes:
        return None
    attention = [a for a in report.get("attention_gemms") or [] if a["kind"] in kinds]
    return sum(s["ms"] * s["calls_per_step"] for s in shapes + attention)


def ceiling_line(label, peer_name, floors_ms, peer_ms, op_by_op=False):
    """One line: the medians over rounds of the floor, of the peer's time, and of each round's
    peer time over its floor (the ceiling on vit's speed-up over the peer). `op_by_op`: the
    ceiling holds for vit running the batch op by op, not by image chunks."""
    from statistics import median
    pairs = [(f, p) for f, p in zip(floors_ms, peer_ms) if f]
    if not pairs:
        return f"{label}: no GEMM rounds in vit's profile"
    ceiling = median(p / f for f, p in pairs)
    def ms(x):
        return f"{x:.1f}" if x >= 10 else f"{x:.3f}"
    who = "vit op by op (image chunks are not held to it)" if op_by_op else "vit"
    return (f"{label}: vit's GEMMs alone {ms(median(f for f, _ in pairs))} ms, {peer_name}'s whole "
            f"{ms(median(p for _, p in pairs))} ms: {who} can be at most {ceiling:.2f}x {peer_name}")
