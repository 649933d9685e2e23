"""CPU runs of the attention kernels go through the Triton interpreter."""

from tests.triton_cpu import interpret_without_gpu

interpret_without_gpu()
