#!/usr/bin/env bash
# Two hosts on one machine: a 2-rank vit train across two network namespaces over Open MPI's
# TCP transport, with the per-step losses of one process (issue 17). Needs root (ip netns);
# without the right to create namespaces it prints one skip line and exits 0.
#
# The namespaces vit-a-PID and vit-b-PID are joined by a veth pair with 10.213.0.1/24 and
# 10.213.0.2/24, addresses that exist inside the namespaces only. mpirun runs in vit-a; its
# remote shell (plm_rsh_agent) is a small script that enters vit-b with `ip netns exec`
# instead of ssh, so the second rank's daemon starts there and every message between the
# ranks crosses the veth pair (btl tcp,self, nothing else). Everything is removed on exit.
#
# Usage: scripts/mpi-netns.sh      (environment as scripts/smoke.sh: VIT, SCRATCH_PATH, KEEP_WORK)
source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"

echo "# vit: $vit"
echo "# work: $work"
a=vit-a-$$
b=vit-b-$$
cleanup_namespaces() {
    ip netns del "$a" 2>/dev/null || true
    ip netns del "$b" 2>/dev/null || true
    cleanup_work
}
trap cleanup_namespaces EXIT

if ! command -v mpirun >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; then
    skip "a 2-rank job across two network namespaces" "mpirun or ip (iproute2) is not installed"
    summary
fi
if ! ip netns add "$a" 2>"$work/netns.log"; then
    skip "a 2-rank job across two network namespaces" "cannot create network namespaces here ($(head -n 1 "$work/netns.log"))"
    summary
fi
check "two namespaces joined by a veth pair with 10.213.0.1 and 10.213.0.2" "$work/setup.log" bash -c "
    set -e
    ip netns add $b
    ip link add veth-vit-a netns $a type veth peer name veth-vit-b netns $b
    ip -n $a addr add 10.213.0.1/24 dev veth-vit-a
    ip -n $b addr add 10.213.0.2/24 dev veth-vit-b
    for ns in $a $b; do ip -n \$ns link set lo up; done
    ip -n $a link set veth-vit-a up
    ip -n $b link set veth-vit-b up
    ip -n $a route get 10.213.0.2 | grep -q veth-vit-a"

# The remote shell: `agent HOST COMMAND...` runs COMMAND in the namespace that holds HOST.
agent=$work/netns-rsh
cat >"$agent" <<EOF
#!/bin/sh
host=\$1
shift
echo "\$host" >>"$work/agent.log"
case "\$host" in
    10.213.0.1) namespace=$a ;;
    10.213.0.2) namespace=$b ;;
    *) echo "netns-rsh: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$namespace" /bin/sh -c "\$*"
EOF
chmod +x "$agent"

data=$work/data
if [[ ! -d "$fashion" ]]; then
    not_ok "Fashion-MNIST is in $fashion (install Debian's dataset-fashion-mnist: make deps)"
    bail "no data to train on"
fi
check "fashion-to-cifar.py writes 512 images per split" "$work/convert.log" \
    python3 scripts/fashion-to-cifar.py --src "$fashion" --out "$data" --limit 512
config=$work/netns.json
cat >"$config" <<EOF
{
  "name": "netns",
  "model": {"image_size": 32, "patch_size": 8, "in_channels": 3, "num_classes": 10,
            "dim": 32, "depth": 2, "heads": 2, "mlp_dim": 64,
            "dropout": 0.1, "attn_dropout": 0.1, "drop_path": 0.2},
  "data": {"format": "cifar10", "path": "$data",
           "mean": [0.286, 0.286, 0.286], "std": [0.353, 0.353, 0.353],
           "random_crop_padding": 2, "hflip": 0.5, "mixup_alpha": 0.8, "cutmix_alpha": 1.0},
  "train": {"epochs": 2, "batch_size": 64, "accum_steps": 2, "lr": 1e-3, "warmup_epochs": 1,
            "label_smoothing": 0.1, "grad_clip": 1.0}
}
EOF

check "1 process × batch 64 trains 8 steps" "$work/one.log" \
    "$vit" train --config "$config" --out "$work/one" --threads 1 --log-steps "$work/one.steps"
check "2 ranks in two namespaces over TCP train the same run" "$work/two.log" \
    ip netns exec "$a" mpirun --allow-run-as-root --oversubscribe -np 2 --host 10.213.0.1:1,10.213.0.2:1 \
    --mca plm_rsh_agent "$agent" --mca btl tcp,self --mca btl_tcp_if_include 10.213.0.0/24 \
    --mca oob_tcp_if_include 10.213.0.0/24 \
    "$vit" train --config "$config" --out "$work/two" --threads 1 --log-steps "$work/two.steps"
check "the 2-rank losses across the namespaces equal 1 process's to 1e-5" "$work/compare.log" \
    python3 - "$work/one.steps" "$work/two.steps" <<'EOF'
import sys
def read(path):
    return {int(s): float(l) for s, l in (line.split() for line in open(path) if line.strip())}
a, b = read(sys.argv[1]), read(sys.argv[2])
assert len(a) == 8 and sorted(a) == sorted(b), (sorted(a), sorted(b))
worst = max(abs(a[s] - b[s]) / abs(a[s]) for s in a)
print(f"largest relative difference {worst:.3g}")
assert worst <= 1e-5, worst
EOF
if grep -q "data-parallel: 2 processes" "$work/two.log" && grep -qx "10.213.0.2" "$work/agent.log" 2>/dev/null; then
    ok "the job ran as 2 processes, the second started in $b through the remote shell"
else
    not_ok "the job ran as 2 processes, the second started in $b through the remote shell" "$work/two.log"
fi

summary
