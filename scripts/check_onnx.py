"""Checks vit's ONNX export, Triton repository and TensorBoard logs with the reference tools.

Run through scripts/check-onnx.sh, which builds vit and sets up the venv. Prints one line per
check and PASS/FAIL; exits 1 when anything failed.
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def idx_file(directory, stem):
    for name in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(directory, name)):
            return os.path.join(directory, name)
    sys.exit(f"check_onnx: no {stem}[.gz] in {directory}")


class Checker:
    def __init__(self):
        self.failures = 0

    def check(self, ok, what):
        print(f"{'ok    ' if ok else 'FAILED'} {what}", flush=True)
        if not ok:
            self.failures += 1


def run(command, log):
    with open(log, "w") as out:
        status = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode
    if status != 0:
        sys.stdout.write(open(log).read()[-3000:])
        sys.exit(f"check_onnx: {' '.join(command)} exited with {status} (log: {log})")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vit", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--configs", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=1000, help="test images compared through onnxruntime")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--work", help="work in this directory (kept), reusing the runs and int8 files a kept earlier check left there")
    parser.add_argument("--quick", action="store_true",
                        help="train on 4,000 images (data.val_split 56000 holds out the rest for validation) instead of 60,000")
    parser.add_argument("--int8-only", action="store_true",
                        help="only the int8 files and the float32 model they come from (no other models, Triton or TensorBoard checks)")
    args = parser.parse_args()

    import onnx
    import onnxruntime as ort
    from google.protobuf import text_format
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    import tritonclient.grpc.model_config_pb2 as model_config_pb2

    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}", flush=True)
    work = args.work or tempfile.mkdtemp(prefix="vit-check-onnx.")
    if args.work:
        os.makedirs(work, exist_ok=True)
        args.keep = True
    checker = Checker()
    threads = ["--threads", str(args.threads)]
    vit = args.vit

    small = ["--set", "model.dim=32", "--set", "model.depth=2", "--set", "model.heads=2", "--set", "model.mlp_dim=64",
             "--set", "train.epochs=1", "--set", "train.warmup_epochs=0.2", "--set", f"data.path={args.data}"]
    if args.quick:
        small += ["--set", "data.val_split=56000"]
    fashion = os.path.join(args.configs, "fashion-mnist.json")
    student = os.path.join(args.configs, "fashion-mnist-student.json")
    runs = {
        "cls-qkvbias": (fashion, ["--set", "model.pool=cls", "--set", "model.qkv_bias=true"]),
        "mean-noqkvbias": (fashion, ["--set", "model.pool=mean", "--set", "model.qkv_bias=false", "--set", "model.drop_path=0"]),
        "distill-token": (student, []),
    }
    if args.int8_only:
        runs = {"cls-qkvbias": runs["cls-qkvbias"]}
    checkpoints = {}
    for name, (config, extra) in runs.items():
        out = os.path.join(work, name)
        if not os.path.exists(os.path.join(out, "model.safetensors")):
            print(f"training {name} ...", flush=True)
            run([vit, "train", "--config", config, "--out", out, *small, *extra, *threads], os.path.join(work, name + ".train.log"))
        checkpoints[name] = (os.path.join(out, "model.safetensors"), "float32")

    base = checkpoints["cls-qkvbias"][0]
    for mode in ["weights", "static"]:
        path = os.path.join(work, f"int8-{mode}.safetensors")
        if not os.path.exists(path):
            run([vit, "quantize", base, "--out", path, "--mode", mode, *threads] + (["--calibration-batches", "4"] if mode == "static" else []),
                os.path.join(work, f"quantize-{mode}.log"))
        checkpoints[f"int8-{mode}"] = (path, "int8")
    # For TensorRT: symmetric activation grids (zero point 0), exported with --target tensorrt.
    symmetric = os.path.join(work, "int8-static-symmetric.safetensors")
    if not os.path.exists(symmetric):
        run([vit, "quantize", base, "--out", symmetric, "--mode", "static", "--activations", "symmetric", "--calibration-batches", "4", *threads],
            os.path.join(work, "quantize-static-symmetric.log"))
    checkpoints["int8-static-tensorrt"] = (symmetric, "int8")
    targets = {"int8-static-tensorrt": "tensorrt"}

    # The test images, normalized as the configs say (mean 0.286, std 0.353).
    images = read_idx(idx_file(args.data, "t10k-images-idx3-ubyte"))[: args.images].astype(np.float32) / np.float32(255)
    labels = read_idx(idx_file(args.data, "t10k-labels-idx1-ubyte"))[: args.images].astype(np.int64)
    images = ((images - np.float32(0.286)) * (np.float32(1) / np.float32(0.353)))[:, None, :, :].astype(np.float32)

    for name, (checkpoint, precision) in checkpoints.items():
        logits_path = os.path.join(work, name + ".logits.npy")
        run([vit, "eval", checkpoint, "--logits", logits_path, "--data", args.data, *threads], os.path.join(work, name + ".eval.log"))
        expected = np.load(logits_path)[: args.images]
        for opset in [17, 13]:
            onnx_path = os.path.join(work, f"{name}.opset{opset}.onnx")
            target = targets.get(name, "onnxruntime")
            run([vit, "export", checkpoint, "--out", onnx_path, "--opset", str(opset), "--target", target], os.path.join(work, f"{name}.export.log"))
            model = onnx.load(onnx_path)
            if target == "tensorrt":
                form_ok, form = tensorrt_form(model, onnx.numpy_helper)
                checker.check(form_ok, f"{name} opset {opset}: TensorRT's Q/DQ form: {form}")
            try:
                onnx.checker.check_model(model, full_check=True)
                checked = True
            except Exception as error:  # noqa: BLE001 - report any checker failure
                print(f"       {error}")
                checked = False
            checker.check(checked, f"{name} opset {opset}: onnx.checker full_check")
            def session(level):
                options = ort.SessionOptions()
                options.intra_op_num_threads = args.threads
                options.graph_optimization_level = level
                return ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])

            def logits(session, batch):
                return np.concatenate([session.run(["logits"], {"input": images[i: i + batch]})[0] for i in range(0, len(images), batch)])

            def int8_figures(got):
                agreement = float((got.argmax(1) == expected.argmax(1)).mean())
                top1_onnx, top1_vit = float((got.argmax(1) == labels).mean()), float((expected.argmax(1) == labels).mean())
                return agreement, top1_onnx, top1_vit, f"argmax agreement {agreement:.2%}, top-1 onnxruntime {top1_onnx:.2%} vs vit {top1_vit:.2%}"

            # Every file runs at onnxruntime's default (all) graph optimizations, where it fuses
            # the int8 files' Q/DQ ops into its own integer kernels; the basic level, which runs
            # the Q/DQ ops as the graph states them, is reported alongside for int8 files. A
            # TensorRT file is checked at the basic level instead (exact Q/DQ float semantics,
            # what TensorRT computes up to int32 accumulation), the default level reported: its
            # int8 weights meet onnxruntime's uint8 x int8 kernels, which saturate on CPUs
            # without VNNI (the reason onnxruntime files are uint8).
            levels = {"default": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}
            checked_level, reported_level = ("basic", "default") if target == "tensorrt" else ("default", "basic")
            graph_session = session(levels[checked_level])
            for batch in [1, 7, 64]:
                got = logits(graph_session, batch)
                if precision == "float32":
                    difference = float(np.abs(got - expected).max())
                    checker.check(difference <= 1e-4, f"{name} opset {opset} batch {batch}: max |onnxruntime - vit eval| = {difference:.2e} over {len(got)} images")
                else:
                    agreement, top1_onnx, top1_vit, text = int8_figures(got)
                    checker.check(agreement >= 0.995 and abs(top1_onnx - top1_vit) <= 0.002,
                                  f"{name} opset {opset} batch {batch} (onnxruntime {checked_level} optimizations): {text}")
            if precision != "float32":
                text = int8_figures(logits(session(levels[reported_level]), 64))[3]
                what = "the Q/DQ ops as stated" if reported_level == "basic" else "onnxruntime's integer kernels"
                print(f"info   {name} opset {opset} batch 64 (onnxruntime {reported_level} optimizations, {what}): {text}", flush=True)
        meta = {p.key: p.value for p in onnx.load(os.path.join(work, f"{name}.opset17.onnx")).metadata_props}
        checker.check(len(json.loads(meta["class_names"])) == 10 and meta["crop_pct"] == "0.875" and meta["source_fingerprint"].startswith("fnv1a64:")
                      and meta.get("target", "onnxruntime") == targets.get(name, "onnxruntime"),
                      f"{name}: metadata_props {sorted(meta)}")

    if args.int8_only:
        finish(args, work, checker)

    # Triton repository.
    repository = os.path.join(work, "model_repository")
    run([vit, "export", base, "--triton", repository, "--name", "vit_classifier"], os.path.join(work, "triton.log"))
    config = text_format.Parse(open(os.path.join(repository, "vit_classifier", "config.pbtxt")).read(), model_config_pb2.ModelConfig())
    model = onnx.load(os.path.join(repository, "vit_classifier", "1", "model.onnx"))

    def onnx_dims(value):
        return [d.dim_value if d.dim_value else d.dim_param for d in value.type.tensor_type.shape.dim]

    input_dims, output_dims = onnx_dims(model.graph.input[0]), onnx_dims(model.graph.output[0])
    checker.check(config.platform == "onnxruntime_onnx" and config.max_batch_size > 0 and config.HasField("dynamic_batching")
                  and config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU,
                  f"triton config.pbtxt parses: platform {config.platform}, max_batch_size {config.max_batch_size}, dynamic batching, CPU")
    checker.check(config.input[0].name == model.graph.input[0].name and list(config.input[0].dims) == input_dims[1:]
                  and config.input[0].data_type == model_config_pb2.TYPE_FP32,
                  f"triton input {config.input[0].name} dims {list(config.input[0].dims)} = ONNX {input_dims}")
    checker.check(config.output[0].name == model.graph.output[0].name and list(config.output[0].dims) == output_dims[1:]
                  and config.output[0].label_filename == "labels.txt",
                  f"triton output {config.output[0].name} dims {list(config.output[0].dims)} = ONNX {output_dims}, labels {config.output[0].label_filename}")
    labels_file = open(os.path.join(repository, "vit_classifier", "labels.txt")).read().splitlines()
    checker.check(len(labels_file) == output_dims[1], f"triton labels.txt: {len(labels_file)} names")

    # TensorBoard: the finished run, and one stopped after 100 steps and resumed.
    resumed = os.path.join(work, "resumed")
    if not os.path.exists(os.path.join(resumed, "model.safetensors")):
        run([vit, "train", "--config", fashion, "--out", resumed, *small, "--max-steps", "20" if args.quick else "100", *threads],
            os.path.join(work, "resumed-1.log"))
        run([vit, "train", "--resume", resumed, *threads], os.path.join(work, "resumed-2.log"))
    for name, directory in [("finished", os.path.join(work, "cls-qkvbias")), ("resumed", resumed)]:
        files = sorted(f for f in os.listdir(directory) if f.startswith("events.out.tfevents."))
        accumulator = EventAccumulator(directory, size_guidance={"scalars": 0, "tensors": 0})
        accumulator.Reload()
        tags = accumulator.Tags()["scalars"]
        steps_ok = all(len({e.step for e in accumulator.Scalars(t)}) == len(accumulator.Scalars(t)) for t in tags)
        metrics = [json.loads(line) for line in open(os.path.join(directory, "metrics.jsonl"))]
        values_ok = True
        for tag, key in [("epoch/train_loss", "train_loss"), ("epoch/train_acc", "train_acc"), ("epoch/val_loss", "val_loss"), ("epoch/val_acc", "val_acc")]:
            events = accumulator.Scalars(tag)
            values_ok &= [e.step for e in events] == [m["step"] for m in metrics]
            values_ok &= all(abs(e.value - np.float32(m[key])) == 0 for e, m in zip(events, metrics))
        losses = accumulator.Scalars("train/loss")
        checker.check(steps_ok and values_ok and "config" in accumulator.Tags()["tensors"] and len(losses) > 0,
                      f"tensorboard {name} run: {len(files)} event file(s), tags {sorted(tags)}, "
                      f"{len(losses)} train/loss steps {losses[0].step}..{losses[-1].step}, each step once, epoch values = metrics.jsonl")

    finish(args, work, checker)


def tensorrt_form(model, numpy_helper):
    """Whether every Q/DQ node has the form TensorRT's explicit quantization takes: an int8 zero
    point initializer of zeros, per tensor on activations (QuantizeLinear), per output channel
    (axis 0) on weights. Returns (ok, description)."""
    import onnx
    initializers = {t.name: t for t in model.graph.initializer}
    problems, counts = [], {"QuantizeLinear": 0, "DequantizeLinear": 0}
    for node in model.graph.node:
        if node.op_type not in counts:
            continue
        counts[node.op_type] += 1
        zero = initializers.get(node.input[2]) if len(node.input) > 2 else None
        if zero is None or zero.data_type != onnx.TensorProto.INT8 or numpy_helper.to_array(zero).any():
            problems.append(f"{node.name}: zero point not int8 zeros")
            continue
        weight = initializers.get(node.input[0])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if node.op_type == "QuantizeLinear" and list(zero.dims) != []:
            problems.append(f"{node.name}: activation zero point of shape {list(zero.dims)}")
        # TensorRT dequantizes the weights of GEMMs and convolutions; pos_embed, added to the
        # tokens, must come as float32.
        if weight is not None and weight.name == "pos_embed":
            problems.append(f"{node.name}: DequantizeLinear on pos_embed, which feeds an Add")
        elif weight is not None and len(weight.dims) > 1 and (axis != 0 or list(zero.dims) != [weight.dims[0]]):
            problems.append(f"{node.name}: weight zero points {list(zero.dims)} on axis {axis} for {list(weight.dims)}")
    text = f"{counts['QuantizeLinear']} QuantizeLinear, {counts['DequantizeLinear']} DequantizeLinear, every zero point int8 0"
    return not problems and counts["QuantizeLinear"] > 0, text if not problems else "; ".join(problems[:3])


def finish(args, work, checker):
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work)
    print("PASS" if checker.failures == 0 else f"FAIL ({checker.failures} checks failed)")
    sys.exit(1 if checker.failures else 0)


if __name__ == "__main__":
    main()
