# Source at the start of a command on the lent GPU machine (carry .whl and .devcache; the
# latter must hold every wheel upstream.lock names: the base and each cherry-pick release):
#   source scripts/gpu_runtime_setup.sh
# Installs the runtime's missing wheels (scripts/gpu_wheels.txt, fetched into .whl/ by
# scripts/fetch_gpu_wheels.sh) into /tmp/site, lays out the upstream SGLang 0.5.10 tree from
# the cached pinned wheel if it is not there, and forces the RDNA4 paths on.
# Engines/servers there need grammar_backend none (xgrammar is not carried).
if [ ! -d .whl ] || ! ls .whl/*.whl >/dev/null 2>&1; then
  echo "gpu_runtime_setup: no .whl/*.whl: run scripts/fetch_gpu_wheels.sh here and carry .whl" >&2
  return 1 2>/dev/null || exit 1
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || { echo "gpu_runtime_setup: wheel install failed" >&2; return 1 2>/dev/null || exit 1; }
# A two-function FlashInfer shim: on CUDA, 0.5.10 imports flashinfer.sampling (sampler.py) and
# flashinfer.prefill (attention/vision.py) at import time. We run sampling_backend=pytorch and
# text-only models, so nothing calls them; the stubs raise if anything does. Every other
# flashinfer import fails with ImportError (upstream probes fall back), and
# SGLANG_IS_FLASHINFER_AVAILABLE=false keeps is_flashinfer_available() False.
mkdir -p /tmp/site/flashinfer
cat > /tmp/site/flashinfer/__init__.py <<'PY'
"""NOT FlashInfer: a test-machine shim written by scripts/gpu_runtime_setup.sh."""
__version__ = "0.0.0+sglang-rdna4-shim"


def _unavailable(name):
    def _fn(*args, **kwargs):
        raise NotImplementedError(f"flashinfer {name} is a shim on this test machine "
                                  "(use --sampling-backend pytorch, text-only models)")
    _fn.__name__ = name
    return _fn
PY
cat > /tmp/site/flashinfer/sampling.py <<'PY'
from flashinfer import _unavailable

min_p_sampling_from_probs = _unavailable("sampling.min_p_sampling_from_probs")
top_k_top_p_sampling_from_probs = _unavailable("sampling.top_k_top_p_sampling_from_probs")
PY
cat > /tmp/site/flashinfer/prefill.py <<'PY'
from flashinfer import _unavailable

cudnn_batch_prefill_with_kv_cache = _unavailable("prefill.cudnn_batch_prefill_with_kv_cache")
PY
export SGLANG_IS_FLASHINFER_AVAILABLE=false
export PYTHONPATH=/tmp/site:$PWD/python:$PWD/sgl-kernel-rocm
export SGLANG_RDNA4=${SGLANG_RDNA4:-1}
export SGLANG_RDNA4_CACHE=${SGLANG_RDNA4_CACHE:-$PWD/.devcache}
export PYTHONUNBUFFERED=1
# our sgl_kernel is not the CUDA sglang-kernel 0.4.1 wheel that engine.py checks for on CUDA
export SGLANG_SKIP_SGL_KERNEL_VERSION_CHECK=1
if [ ! -f python/sglang/srt/server_args.py ]; then
  python3 tools/sync_upstream.py materialize || { echo "gpu_runtime_setup: materialize failed" >&2; return 1 2>/dev/null || exit 1; }
fi
python3 -c "import sglang, transformers, torch; print('gpu_runtime_setup: sglang', sglang.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__)"
