"""fn captured in a CUDA graph, for timing kernels without the host's
enqueueing."""

import torch


def capture(fn) -> torch.cuda.CUDAGraph:
    """A CUDA graph of one call of fn, after three warm-up calls on a side
    stream (as CUDA graph capture requires)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph
