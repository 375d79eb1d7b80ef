"""Plans decode layouts with harness.py's mirror of fa_runtime::paged::
decode_layout, for fa-runtime/tests/dev_mirror.rs, which compares them with
the runtime's own. Standard library only (harness.py imports torch and the
CUDA bindings only where it runs kernels).

stdin: one JSON object a line, {"batch", "kv_heads", "max_context",
"window", "sink", "sm_count", "one", "unsplit", "pair", "pair_splits"}, each
entry [ctas_per_sm, smem_bytes]. stdout: one JSON array a line, [kernel,
splits, fused_merge] with kernel "One", "Unsplit" or "Pair"."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class Entries:
    """What harness.runtime_layout reads of a Module: its entries
    ((function, dynamic smem, CTAs/SM, registers) per kv heads a CTA, "u" for
    _decode_unsplit) and whether _decode_pair takes splits."""

    def __init__(self, case):
        e = lambda k: (None, case[k][1], case[k][0], 0)
        self.entries = {1: e("one"), "u": e("unsplit"), 2: e("pair")}
        self.pair_splits = bool(case["pair_splits"])

    def entry(self, hc):
        return self.entries.get(hc, self.entries[1])

    def occ_for(self, hc):
        return self.entry(hc)[2]


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        c = json.loads(line)
        hc, s, fused, unsplit = harness.runtime_layout(c["batch"], c["kv_heads"], c["max_context"], c["sm_count"],
                                                       Entries(c), c["window"], c["sink"])
        kernel = "Unsplit" if unsplit else ("Pair" if hc == 2 else "One")
        print(json.dumps([kernel, s, bool(fused)]))


if __name__ == "__main__":
    main()
