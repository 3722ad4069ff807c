#!/usr/bin/env bash
# One prepared pass over everything that needs an accelerator, for a short lease of a GPU machine
# (the `device` tool: 15 minutes, start-up included).  Writes its results under $OUT (default ./gpu_out).
#   - the throughput table: every Fashion-MNIST config against the per-step baseline, and the DCGAN's convolution
#     forms in f32 and bf16, JSON + markdown;
#   - the PyTorch peers side by side (CUDA graphs, bf16 autocast), JSON + markdown;
#   - the Fashion-MNIST VAEs and the DCGAN trained through experiments.main on the GPU (the mesh's sharded jit
#     path on one device), with their summaries and steps/s;
#   - the 64x64 DCGAN streamed against on-device, and the Inception network's images/s (DATA_ONLY=1: only these);
#   - with SWEEPS_ONLY=1 instead: the sweep checks below and nothing else.
# The GPU image lacks ml_collections and tensorboardX (and grain, array-record for DATA_ONLY's streamed run): carry
# them as wheels in .whl/, and Fashion-MNIST's IDX files in data/fashion-mnist/ (both ignored by git).
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT" /tmp/site
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import jax, flax, optax, orbax.checkpoint as o; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
  date -u
} 2>&1 | tee "$OUT/env.txt"
DATA=${DATA_DIR:-data/fashion-mnist}
THROUGHPUT="python3 -m benchmarks.throughput --config.data_dir=$DATA"

# The sweep issue's GPU checks alone (SWEEPS_ONLY=1, one lease): 64 vae_mlp members as one vmapped population
# against one fused model (target: members_speedup >= 20), then 3 seeds of each Fashion-MNIST GAN in one sweep
# command each (the README's GAN rows as mean ± std; records under $OUT/results, scored by the classifier the run
# trains on the GPU, so they form their own floor group in the sample-quality table).
if [ -n "${SWEEPS_ONLY:-}" ]; then
  timeout "${MEMBERS_TIMEOUT:-240}" $THROUGHPUT --config experiments/configs/vae_mlp_fashion_mnist.py --no-peers \
    --members "${MEMBERS:-64}" --members-in-turn --repeats 3 --json "$OUT/gpu_members_vae_mlp.json" 2>&1 \
    | grep -v "^[WV][0-9]" | tail -20 | tee "$OUT/gpu_members.log"
  mkdir -p "$OUT/results" /tmp/runs
  for name in gan_fashion_mnist cgan_fashion_mnist; do
    timeout "${SWEEP_TIMEOUT:-240}" python3 -m experiments.sweep --config "experiments/configs/$name.py" \
      --workdir "/tmp/runs/sweep_$name" --sweep "seed=0:${SEEDS:-3}" --config.data_dir="$DATA" \
      --record "$OUT/results/gpu_sweep_$name.json" "$@" > "/tmp/runs/sweep_$name.log" 2>&1
    echo "$name exit=$?" | tee -a "$OUT/runs.txt"
    tail -c 600 "/tmp/runs/sweep_$name.log" | tr '\r' '\n' | tail -4 >> "$OUT/runs.txt"
  done
  exit 0
fi

# The data-size and score issues' GPU checks (DATA_ONLY=1 stops after them): the 64x64x3 DCGAN streamed from the
# host against the on-device placement in one run (target: stream_over_device >= 0.95), and the Inception network's
# images/s (its pool3 features of 10,000 images; the cost of one inception_fid).
timeout "${STREAM_TIMEOUT:-240}" python3 -m benchmarks.stream_throughput --config experiments/configs/dcgan_cifar10.py \
  --image_size 64 --rss_images 0 --json "$OUT/gpu_stream_dcgan64.json" 2>&1 | grep -v "^[WV][0-9]" | tail -10 \
  | tee "$OUT/gpu_data.log"
timeout "${INCEPTION_TIMEOUT:-180}" python3 -m benchmarks.inception_cost --images 10000 --batch-size 200 \
  --json "$OUT/gpu_inception_cost.json" 2>&1 | grep -v "^[WV][0-9]" | tail -10 | tee -a "$OUT/gpu_data.log"
if [ -n "${DATA_ONLY:-}" ]; then
  exit 0
fi

timeout "${BENCH_TIMEOUT:-300}" $THROUGHPUT --config experiments/configs/*_fashion_mnist.py --baseline --no-peers \
  --json "$OUT/gpu_throughput.json" --markdown "$OUT/gpu_throughput.md" 2>&1 | grep -v "^[WV][0-9]" | tail -40 \
  | tee "$OUT/gpu_throughput.log"
timeout "${BENCH_TIMEOUT:-300}" $THROUGHPUT --config experiments/configs/dcgan_fashion_mnist.py --baseline --no-peers \
  --vary conv_impl=flax,dual_grad,subpixel --vary compute_dtype=float32,bfloat16 --json "$OUT/gpu_dcgan_forms.json" \
  --markdown "$OUT/gpu_dcgan_forms.md" 2>&1 | grep -v "^[WV][0-9]" | tail -20 | tee -a "$OUT/gpu_throughput.log"

# The PyTorch peers (benchmarks/peers/; the GPU image has PyTorch) in the same runs as the fused JAX steps: PyTorch
# eager and torch.compile with CUDA graphs, under bf16 autocast in the bf16 rows; gan_digits's MLP GAN on
# Fashion-MNIST.  JAX leaves half of the GPU's memory to PyTorch.  The issue's GPU targets: vae_mlp f32
# speedup_vs_torch_compiled >= 3, the fastest dcgan form's bf16 speedup_vs_torch_eager >= 1.5.  PEERS_ONLY=1 stops
# after this block (the whole session is longer than one lease).
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.5}
timeout "${PEERS_TIMEOUT:-300}" $THROUGHPUT \
  --config experiments/configs/{vae_mlp_fashion_mnist,gan_digits,dcgan_fashion_mnist}.py --config.dataset=fashion_mnist \
  --vary compute_dtype=float32,bfloat16 --repeats 3 --json "$OUT/gpu_peers.json" --markdown "$OUT/gpu_peers.md" 2>&1 \
  | grep -v "^[WV][0-9]" | tail -40 | tee "$OUT/gpu_peers.log"
timeout "${PEERS_TIMEOUT:-150}" $THROUGHPUT --config experiments/configs/dcgan_fashion_mnist.py \
  --config.conv_impl=subpixel --config.compute_dtype=bfloat16 --repeats 3 \
  --json "$OUT/gpu_peers_dcgan_subpixel_bf16.json" 2>&1 | grep -v "^[WV][0-9]" | tail -12 | tee -a "$OUT/gpu_peers.log"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" >> "$OUT/env.txt" 2>&1
if [ -n "${PEERS_ONLY:-}" ]; then exit 0; fi

run() {  # name config timeout [overrides…]
  local name=$1 config=$2 limit=$3; shift 3
  mkdir -p "$OUT/results"  # results records (experiments.main --record): copy them to results/ to cite them
  timeout "$limit" python3 -m experiments.main --config "experiments/configs/$config.py" --workdir "/tmp/runs/$name" \
    --record "$OUT/results/gpu_$name.json" --config.data_dir="$DATA" "$@" > "/tmp/runs_$name.log" 2>&1
  echo "$name exit=$?" | tee -a "$OUT/runs.txt"
  tail -3 "/tmp/runs_$name.log" | tr '\r' '\n' | tail -3 >> "$OUT/runs.txt"
}
mkdir -p /tmp/runs
cat > /tmp/summarize_runs.py <<'PY'
import glob, json, os, sys
out = {}
for run in sorted(glob.glob("/tmp/runs/*")):
    name = os.path.basename(run)
    record = {}
    if os.path.exists(f"{run}/summary.json"):
        record["summary"] = json.load(open(f"{run}/summary.json"))
    if os.path.exists(f"{run}/metrics.jsonl"):
        rates = [json.loads(l).get("train/steps_per_sec") for l in open(f"{run}/metrics.jsonl")]
        rates = [r for r in rates if r]
        record["steps_per_sec_records"] = rates
        record["steps_per_sec_median_after_first"] = sorted(rates[1:])[len(rates[1:]) // 2] if len(rates) > 1 else None
    out[name] = record
json.dump(out, open(f"{sys.argv[1]}/gpu_runs.json", "w"), indent=1)
print(json.dumps({k: {"steps/s": v.get("steps_per_sec_median_after_first"),
                      **{m: v.get("summary", {}).get(m) for m in ("test_neg_elbo", "test_iwae_nll", "classifier_fid", "classifier_fid_floor", "inception_fid")}}
                  for k, v in out.items()}, indent=1))
PY
run vae_mlp_s0 vae_mlp_fashion_mnist 100; python3 /tmp/summarize_runs.py "$OUT" > /dev/null
run vae_conv vae_conv_fashion_mnist 110; python3 /tmp/summarize_runs.py "$OUT" > /dev/null
run dcgan dcgan_fashion_mnist 150 --config.num_steps=5000 --config.eval_every=1000 --config.checkpoint_every=1000 --config.log_every=250; python3 /tmp/summarize_runs.py "$OUT" > /dev/null
run vae_mlp_s1 vae_mlp_fashion_mnist 50 --config.seed=1 --config.iwae_k=0
run vae_mlp_s2 vae_mlp_fashion_mnist 50 --config.seed=2 --config.iwae_k=0
python3 /tmp/summarize_runs.py "$OUT"
# At most 8 files come back from a lease: one sample grid.
f=$(ls /tmp/runs/dcgan/figures/*sample*.png 2>/dev/null | head -1)
[ -n "$f" ] && cp "$f" "$OUT/dcgan_gpu_samples.png"
true
